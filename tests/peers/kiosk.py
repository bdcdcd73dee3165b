#!/usr/bin/python3
"""A locker kiosk written with paho-mqtt (a client we did not write), speaking only the documented
MQTT API (docs/mqtt-api.md): send one request to a bank's kiosk topic, print the reply.

usage: kiosk.py HOST PORT BANK USER PASSWORD REQUEST_JSON [KIOSK_ID [KEEPALIVE]]
Prints the reply JSON on stdout; exits 1 if no reply arrives within 10 s.
"""
import json
import sys
import threading
import uuid

import paho.mqtt.client as mqtt


def main():
    host, port, bank, user, password, request = sys.argv[1:7]
    # The kiosk's id in the hub's configuration: it may only be answered under its own reply topic.
    kiosk = sys.argv[7] if len(sys.argv) > 7 else "paho"
    # 0 is MQTT's "no keep-alive", which some controllers and gateways send.
    keepalive = int(sys.argv[8]) if len(sys.argv) > 8 else 10
    request = json.loads(request)
    request.setdefault("request_id", "paho-" + uuid.uuid4().hex[:12])
    reply_to = "lockerhub/v1/bank/%s/kiosk/reply/%s/%s" % (bank, kiosk, uuid.uuid4().hex[:8])
    request["reply_to"] = reply_to
    got = threading.Event()
    answer = {}

    try:  # paho-mqtt 2.x
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, client_id="paho-kiosk-" + uuid.uuid4().hex[:8])
    except AttributeError:  # paho-mqtt 1.x (Debian 12)
        client = mqtt.Client(client_id="paho-kiosk-" + uuid.uuid4().hex[:8])
    client.username_pw_set(user, password)

    def on_connect(c, userdata, flags, rc):
        if rc != 0:
            print("connect refused: %s" % rc, file=sys.stderr)
            got.set()
            return
        c.subscribe(reply_to, qos=1)

    def on_subscribe(c, userdata, mid, granted_qos):
        c.publish("lockerhub/v1/bank/%s/kiosk/request" % bank, json.dumps(request), qos=1)

    def on_message(c, userdata, msg):
        answer["reply"] = msg.payload.decode()
        got.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(host, int(port), keepalive=keepalive)
    client.loop_start()
    ok = got.wait(10)
    client.loop_stop()
    client.disconnect()
    if not ok or "reply" not in answer:
        print("no reply", file=sys.stderr)
        sys.exit(1)
    print(answer["reply"])


if __name__ == "__main__":
    main()
