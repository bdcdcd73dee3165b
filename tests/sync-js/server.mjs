// The cloud side of locker-hub's sync tests: the JavaScript automerge-repo sync server (the
// websocket server adapter and the nodefs storage adapter, as a cloud runs them), behind a
// bearer-token check on the WebSocket upgrade, with a line-based control channel on stdin so the
// Rust test can read and write documents the way a cloud application would.
//
//   node server.mjs <port> <storage dir> <token> [--tls cert.pem key.pem] [--stall <documentId>]
//
// `--stall` (or the `stall` command) drops every message the server would send about that
// document, as a server that stopped answering for it: a test holds a hub in its catch-up.
//
// Prints "listening <port>" when ready. Control lines (JSON), each answered by one JSON line:
//   {"cmd":"keys","doc":"<documentId>"}             -> {"ok":true,"keys":[...]} (fact ids)
//   {"cmd":"get","doc":"<id>","key":"<fact id>"}    -> {"ok":true,"value":{...}}
//   {"cmd":"put","doc":"<id>","key":"<fact id>","value":{...}}  -> {"ok":true}
//   {"cmd":"create","doc":"<id>"}                   -> {"ok":true}  (a new, empty document under
//                                                     that id, as a cloud application makes the
//                                                     month's requests document)
//   {"cmd":"heads","doc":"<id>"}                    -> {"ok":true,"heads":[...]} (hex, sorted)
//   {"cmd":"stall","doc":"<id>"} / {"cmd":"unstall","doc":"<id>"}  -> {"ok":true}
//   {"cmd":"dump"}                                  -> {"ok":true,"docs":{"<id>":{...}}}
import http from "node:http"
import https from "node:https"
import fs from "node:fs"
import readline from "node:readline"
import { WebSocketServer } from "ws"
import * as Automerge from "@automerge/automerge"
import { Repo } from "@automerge/automerge-repo"
import { NodeWSServerAdapter } from "@automerge/automerge-repo-network-websocket"
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs"

const args = process.argv.slice(2)
const stalled = new Set()
const stallAt = args.indexOf("--stall")
if (stallAt >= 0) {
  stalled.add(args[stallAt + 1])
  args.splice(stallAt, 2)
}
const [port, dir, token, tlsFlag, certFile, keyFile] = args
const wss = new WebSocketServer({ noServer: true })
const handler = (_req, res) => {
  res.writeHead(404)
  res.end()
}
const server =
  tlsFlag === "--tls"
    ? https.createServer({ cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) }, handler)
    : http.createServer(handler)
server.on("upgrade", (req, socket, head) => {
  if (req.headers.authorization !== `Bearer ${token}`) {
    socket.write("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    socket.destroy()
    return
  }
  wss.handleUpgrade(req, socket, head, ws => wss.emit("connection", ws, req))
})

// As a sync server runs: it never announces documents; peers ask for what they want.
const adapter = new NodeWSServerAdapter(wss)
const send = adapter.send.bind(adapter)
adapter.send = message => {
  if (message.documentId && stalled.has(message.documentId)) return
  send(message)
}
const repo = new Repo({
  network: [adapter],
  storage: new NodeFSStorageAdapter(dir),
  peerId: `cloud-${port}`,
  sharePolicy: async () => false,
})

// Documents made here with "create": an empty document is not "ready" to `find` until it has a
// change, so the handle `import` returned is used for the first write.
const created = new Map()

async function handle(doc) {
  if (created.has(doc)) return created.get(doc)
  const h = await repo.find(doc)
  await h.whenReady()
  return h
}

async function run(line) {
  const msg = JSON.parse(line)
  switch (msg.cmd) {
    case "keys": {
      const h = await handle(msg.doc)
      return { ok: true, keys: Object.keys(h.doc() ?? {}) }
    }
    case "stall": {
      stalled.add(msg.doc)
      return { ok: true }
    }
    case "unstall": {
      stalled.delete(msg.doc)
      return { ok: true }
    }
    case "heads": {
      const h = await handle(msg.doc)
      return { ok: true, heads: Automerge.getHeads(h.doc()).slice().sort() }
    }
    case "get": {
      const h = await handle(msg.doc)
      return { ok: true, value: (h.doc() ?? {})[msg.key] ?? null }
    }
    case "put": {
      const h = await handle(msg.doc)
      h.change(d => {
        d[msg.key] = msg.value
      })
      return { ok: true }
    }
    case "create": {
      const h = repo.import(Automerge.save(Automerge.init()), { docId: msg.doc })
      // A hub that asked for it before it existed left the handle "unavailable".
      h.doneLoading()
      created.set(msg.doc, h)
      return { ok: true }
    }
    case "dump": {
      const docs = {}
      for (const [id, h] of Object.entries(repo.handles)) {
        try {
          docs[id] = h.doc() ?? null
        } catch (e) {
          docs[id] = { unreadable: String(e) }
        }
      }
      return { ok: true, docs }
    }
    default:
      return { ok: false, error: `unknown command ${msg.cmd}` }
  }
}

const rl = readline.createInterface({ input: process.stdin })
rl.on("line", line => {
  run(line)
    .then(answer => console.log(JSON.stringify(answer)))
    .catch(e => console.log(JSON.stringify({ ok: false, error: String(e) })))
})
rl.on("close", () => process.exit(0))

server.listen(Number(port), "127.0.0.1", () => {
  console.log(`listening ${server.address().port}`)
})
