#!/usr/bin/env python3
"""Simulated Modbus devices for locker-hub's end-to-end tests, served by pymodbus (a peer we did
not write), over Modbus TCP or Modbus RTU on a pseudo-terminal.

    modbus_server.py tcp                 # prints "ready tcp PORT" (an ephemeral port on 127.0.0.1)
    modbus_server.py rtu PATH            # prints "ready rtu PATH"; PATH becomes a symlink to
                                         # the PTY the hub opens, like /dev/serial/by-id/...

Devices (one bus, several slaves):
  slave 1  XY-MD02 transmitter: input 0x0001 temperature (s16, x0.1 degC), 0x0002 humidity
           (x0.1 %), holding 0x0101 its own address. Nothing else exists (exception 0x02).
  slave 2  Carel ir33 controller: input 403 cabinet probe, 412 evaporator (s16, x0.1),
           holding 404 setpoint, discrete 43 door, 7 compressor, coils 5/2 high/low alarm.
  slave 3  lock module: coils 0-7 drive locks, discrete inputs 0-7 are the door switches
           (1 = closed). A coil switched on releases its lock: the matching door opens (its
           input goes to 0) until the test closes it.
  slave 4  Eletechsup-style relay module: holding registers 1-8 take command words (0x0100 on,
           0x0200 off, 0x06SS on for SS seconds, then off by itself), discrete inputs 0-7 are
           door switches (1 = closed); relay n switched on opens door input n-1. Register 8
           behaves like a clone that answers a write with the relay's state (1/0) instead of
           echoing the command word, which a master must not take for a confirmation.

Commands on stdin, one per line:
  temp SLAVE CELSIUS        set the temperature of slave 1 or 2
  door SLAVE INPUT 0|1      set a discrete input (1 = closed on the lock module)
  silent SLAVE on|off       the slave stops answering (as if unplugged) / answers again
  slow SLAVE SECONDS        the slave answers that late (0: at once), so its replies can
                            arrive after the master gave up
Events on stdout, one per line: "coil SLAVE ADDRESS 0|1" for every coil write,
"register SLAVE ADDRESS 0xVVVV" for every holding-register write.

The RTU side needs two PTY pairs: pymodbus opens one slave end by path, the hub the other, and
this script copies bytes between the two master ends (what socat does), so both programs open
a real tty by name.
"""

import asyncio
import os
import sys
import termios
import tty

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer

COILS, DISCRETE, HOLDING, INPUT = "c", "d", "h", "i"
# Function code -> table (reads and writes).
TABLE = {1: COILS, 5: COILS, 15: COILS, 2: DISCRETE, 3: HOLDING, 6: HOLDING, 16: HOLDING, 4: INPUT}


def s16(value):
    return value & 0xFFFF


class Device:
    def __init__(self, tables):
        # table -> {address: value}; an address not present does not exist on the device.
        self.tables = tables
        self.silent = False
        self.delay = 0.0


def devices():
    xy = Device(
        {
            COILS: {},
            DISCRETE: {},
            INPUT: {1: s16(45), 2: 550},
            HOLDING: {0x0101: 1, 0x0102: 0},
        }
    )
    carel = Device(
        {
            COILS: {a: 0 for a in range(0, 64)},
            DISCRETE: {a: 0 for a in range(0, 64)},
            INPUT: {a: 0 for a in range(400, 420)},
            HOLDING: {a: 0 for a in range(400, 420)},
        }
    )
    carel.tables[INPUT][403] = s16(38)
    carel.tables[INPUT][412] = s16(-120)
    carel.tables[HOLDING][404] = s16(40)
    lock = Device(
        {
            COILS: {a: 0 for a in range(8)},
            DISCRETE: {a: 1 for a in range(8)},
            INPUT: {},
            HOLDING: {},
        }
    )
    relays = Device(
        {
            COILS: {},
            DISCRETE: {a: 1 for a in range(8)},
            INPUT: {},
            HOLDING: {a: 0 for a in range(1, 9)},
        }
    )
    return {1: xy, 2: carel, 3: lock, 4: relays}


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Context(ModbusServerContext):
    """A datastore of our own: pymodbus asks it for values and hands it writes."""

    def __init__(self, devs):  # pylint: disable=super-init-not-called
        self.devs = devs
        # Tells pymodbus to call async_getValues/async_setValues on this object.
        self.old_simulator = True
        self.simdevices = []
        self._devices = devs

    def device(self, device_id):
        dev = self.devs.get(device_id)
        if dev is None or dev.silent:
            # With ignore_missing_devices the server sends nothing: the master times out.
            raise NoSuchIdException(f"no device {device_id}")
        return dev

    async def async_getValues(self, device_id, func_code, address, count=1):
        dev = self.device(device_id)
        if dev.delay:
            await asyncio.sleep(dev.delay)
        table = dev.tables[TABLE[func_code]]
        values = []
        for a in range(address, address + count):
            if a not in table:
                return ExcCodes.ILLEGAL_ADDRESS
            values.append(bool(table[a]) if TABLE[func_code] in (COILS, DISCRETE) else table[a])
        return values

    async def async_setValues(self, device_id, func_code, address, values):
        dev = self.device(device_id)
        name = TABLE[func_code]
        table = dev.tables[name]
        if any(a not in table for a in range(address, address + len(values))):
            return ExcCodes.ILLEGAL_ADDRESS
        for i, v in enumerate(values):
            a = address + i
            table[a] = int(v)
            if name == COILS:
                say(f"coil {device_id} {a} {int(bool(v))}")
                # The lock module: a released lock lets its door swing open.
                if device_id == 3 and v:
                    dev.tables[DISCRETE][a] = 0
            elif name == HOLDING:
                say(f"register {device_id} {a} 0x{int(v):04X}")
                if device_id == 4:
                    self.relay_command(dev, a, int(v))
        return None

    @staticmethod
    def relay_command(dev, relay, word):
        """Eletechsup command words. The write is echoed as sent (pymodbus answers an FC 06
        with the register's value after the write), except by the misbehaving register 8."""
        command = word >> 8
        on = command in (1, 5, 6)
        if on:
            dev.tables[DISCRETE][relay - 1] = 0
        if relay == 8:
            dev.tables[HOLDING][relay] = int(on)

    def device_ids(self):
        return list(self.devs.keys())


def command(devs, line):
    parts = line.split()
    try:
        if parts[0] == "temp":
            slave, celsius = int(parts[1]), float(parts[2])
            address = 1 if slave == 1 else 403
            devs[slave].tables[INPUT][address] = s16(round(celsius * 10))
        elif parts[0] == "door":
            devs[int(parts[1])].tables[DISCRETE][int(parts[2])] = int(parts[3])
        elif parts[0] == "silent":
            devs[int(parts[1])].silent = parts[2] == "on"
        elif parts[0] == "slow":
            devs[int(parts[1])].delay = float(parts[2])
        else:
            say(f"error unknown command {line!r}")
            return
        say(f"ok {line}")
    except (IndexError, KeyError, ValueError) as e:
        say(f"error {line!r}: {e}")


async def read_commands(devs):
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            # The test is gone: stop serving.
            os._exit(0)
        if line.strip():
            command(devs, line.strip())


def raw_pty():
    master, slave = os.openpty()
    tty.setraw(slave)
    attrs = termios.tcgetattr(slave)
    attrs[3] &= ~termios.ECHO
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    os.set_blocking(master, False)
    return master, slave, os.ttyname(slave)


def relay(a, b):
    """Copy bytes between two PTY masters, both ways."""
    loop = asyncio.get_running_loop()

    def pump(src, dst):
        try:
            data = os.read(src, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            # EIO while nobody has the slave open (the hub reopening): wait for it.
            loop.remove_reader(src)
            loop.call_later(0.01, lambda: loop.add_reader(src, pump, src, dst))
            return
        if data:
            try:
                os.write(dst, data)
            except OSError:
                pass

    loop.add_reader(a, pump, a, b)
    loop.add_reader(b, pump, b, a)


async def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("tcp", "rtu") or (sys.argv[1] == "rtu" and len(sys.argv) < 3):
        sys.stderr.write(__doc__)
        sys.exit(2)
    devs = devices()
    context = Context(devs)
    asyncio.get_running_loop().create_task(read_commands(devs))
    if sys.argv[1] == "tcp":
        server = ModbusTcpServer(context, address=("127.0.0.1", 0), ignore_missing_devices=True)
        await server.listen()
        port = server.transport.sockets[0].getsockname()[1]
        say(f"ready tcp {port}")
    else:
        link = sys.argv[2]
        peer_master, peer_slave, peer_path = raw_pty()
        hub_master, hub_slave, hub_path = raw_pty()
        # Both slave ends stay open here too, so a master never reports EIO for long.
        _keep = (peer_slave, hub_slave)
        relay(peer_master, hub_master)
        tmp = link + ".new"
        if os.path.lexists(tmp):
            os.remove(tmp)
        os.symlink(hub_path, tmp)
        os.rename(tmp, link)
        server = ModbusSerialServer(
            context,
            framer=FramerType.RTU,
            port=peer_path,
            baudrate=9600,
            ignore_missing_devices=True,
        )
        await server.listen()
        say(f"ready rtu {link}")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
