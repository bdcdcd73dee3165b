"""The SMTP server of locker-hub's email tests: aiosmtpd (from PyPI), a server we did not write.

    python smtp_server.py <port> <out dir>

Prints "listening <port>" when ready. Each message it accepts is written to <out dir> as
<n>.json: message_id, from, to, subject, text, html, and images (each {"cid", "type", "base64"}),
parsed with Python's own email package. While <out dir>/refuse exists, every message is answered
"451 try again later" (a server that is busy); while <out dir>/reject exists, "550 no such user".
"""

import base64
import json
import os
import sys
import time
from email import policy
from email.parser import BytesParser

from aiosmtpd.controller import Controller


class Handler:
    def __init__(self, out):
        self.out = out
        self.n = 0

    async def handle_DATA(self, server, session, envelope):
        if os.path.exists(os.path.join(self.out, "refuse")):
            return "451 4.3.0 try again later"
        if os.path.exists(os.path.join(self.out, "reject")):
            return "550 5.1.1 no such user"
        msg = BytesParser(policy=policy.default).parsebytes(envelope.content)
        text = msg.get_body(preferencelist=("plain",))
        html = msg.get_body(preferencelist=("html",))
        images = []
        for part in msg.walk():
            if part.get_content_maintype() == "image":
                images.append({
                    "cid": (part.get("Content-ID") or "").strip("<>"),
                    "type": part.get_content_type(),
                    "base64": base64.b64encode(part.get_payload(decode=True)).decode(),
                })
        record = {
            "message_id": msg.get("Message-ID"),
            "from": msg.get("From"),
            "to": envelope.rcpt_tos,
            "subject": msg.get("Subject"),
            "text": text.get_content() if text else None,
            "html": html.get_content() if html else None,
            "images": images,
        }
        self.n += 1
        path = os.path.join(self.out, f"{self.n:04d}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)
        return "250 OK"


def main():
    port, out = int(sys.argv[1]), sys.argv[2]
    controller = Controller(Handler(out), hostname="127.0.0.1", port=port)
    controller.start()
    print(f"listening {port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
