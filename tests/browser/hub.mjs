// Shared by the browser test and the latency benchmark: start the real `locker-hub demo` on
// ephemeral loopback ports, launch Debian's Chromium through playwright-core, talk MQTT with
// Debian's mosquitto clients (peers we did not write).

import { spawn, execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const PASSWORD = 'demo-password';
export const CARRIER_CODE = '246810';

/** The binary under test: LOCKER_HUB_BIN, or the workspace's debug build (tests/run builds it). */
export function hubBinary() {
  return process.env.LOCKER_HUB_BIN || path.join(repoRoot, 'target', 'debug', 'locker-hub');
}

/**
 * `locker-hub demo` on ports chosen by the kernel (port 0: the demo keeps it, the ready line says
 * what was bound). Resolves once the ready line is printed.
 */
export function startDemo() {
  const child = spawn(hubBinary(), ['demo', '--mqtt-port', '0', '--web-port', '0'], {
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const remember = (line) => {
    output += line + '\n';
  };
  createInterface({ input: child.stderr }).on('line', remember);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`locker-hub demo did not become ready in 30 s; it printed:\n${output}`));
    }, 30_000);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`locker-hub demo exited (${code ?? signal}) before ready:\n${output}`));
    });
    createInterface({ input: child.stdout }).on('line', (line) => {
      remember(line);
      if (!line.startsWith('locker-hub ready:')) return;
      clearTimeout(timer);
      const field = (name) => {
        const w = line.split(/\s+/).find((w) => w.startsWith(name + '='));
        return w && w.slice(name.length + 1);
      };
      const web = field('web');
      const [mqttHost, mqttPort] = field('mqtt').split(':');
      resolve({
        origin: new URL(web).origin,
        mqtt: { host: mqttHost, port: Number(mqttPort) },
        output: () => output,
        async stop() {
          if (child.exitCode !== null) return;
          const gone = new Promise((r) => child.once('exit', r));
          child.kill('SIGTERM');
          const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
          await gone;
          clearTimeout(t);
        },
      });
    });
  });
}

/** The flags that keep Chromium from talking to anything but the page (see docs/testing). */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Debian's Chromium. playwright-core starts it with a fresh, empty profile: its own
 * `--user-data-dir` in a new temporary directory, removed again on close (an explicit
 * --user-data-dir would allow only one browser context, and the tests need one per user).
 */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
  });
}

/**
 * Record every request a context's pages make into `seen` (`{ count, offenders }`): an offender
 * is any request whose origin is not the hub's.
 */
export function watchRequests(context, origin, seen) {
  context.on('request', (req) => {
    seen.count += 1;
    let ok = false;
    try {
      ok = new URL(req.url()).origin === origin;
    } catch {
      ok = false;
    }
    if (!ok) seen.offenders.push(req.url());
  });
}

/** Sign in on the hub's sign-in page. */
export async function signIn(page, origin, user) {
  await page.goto(origin + '/login');
  await page.fill('input[name=user]', user);
  await page.fill('input[name=password]', PASSWORD);
  await Promise.all([page.waitForNavigation(), page.click('form.login button')]);
}

/**
 * One kiosk request over MQTT 5 with `mosquitto_rr`, as a bank's own kiosk would, logged in as
 * the demo's kiosk of that bank (`kiosk-A`, `kiosk-B`): the reply.
 */
export function kioskRequest(mqtt, bank, request) {
  const args = [
    '-h', mqtt.host, '-p', String(mqtt.port), '-V', '5', '-q', '1', '-W', '10',
    '-u', `kiosk-${bank}`, '-P', PASSWORD,
    '-t', `lockerhub/v1/bank/${bank}/kiosk/request`,
    '-e', `lockerhub/v1/bank/${bank}/kiosk/reply/demo/browser-test-${process.pid}`,
    '-m', JSON.stringify(request),
  ];
  return new Promise((resolve, reject) => {
    execFile('mosquitto_rr', args, { timeout: 15_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`mosquitto_rr: ${err.message} ${stderr}`));
      try {
        resolve(JSON.parse(stdout.trim().split('\n').pop()));
      } catch (e) {
        reject(new Error(`mosquitto_rr printed ${stdout}: ${e.message}`));
      }
    });
  });
}

/**
 * Follow a topic with `mosquitto_sub -v`; calls `onMessage(topic, payload, receivedAtMs)` for
 * each line. Resolves once subscribed (mosquitto_sub has no "subscribed" signal, so the first
 * retained message or a short settle time marks it).
 */
export function subscribe(mqtt, topic, onMessage) {
  const child = spawn('mosquitto_sub', ['-h', mqtt.host, '-p', String(mqtt.port), '-V', '5', '-q', '1', '-v', '-t', topic], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  createInterface({ input: child.stdout }).on('line', (line) => {
    const at = Date.now();
    const space = line.indexOf(' ');
    onMessage(line.slice(0, space), line.slice(space + 1), at);
  });
  return {
    stop() {
      child.kill('SIGTERM');
    },
  };
}

/** Poll `fn` until it returns a truthy value (or throw after `ms`). */
export async function eventually(what, fn, ms = 10_000, every = 100) {
  const until = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}; last: ${last}`);
    await new Promise((r) => setTimeout(r, every));
  }
}
