"""A tiny local HTTP server standing in for the ECS/EKS container credentials endpoint and for a
failing STS, for credentials_test.cc.

usage: python3 cred_server.py PORT_FILE TOKEN
  GET  /creds?ttl=S     -> 200 credentials expiring in S seconds (401 unless Authorization == TOKEN)
  GET  /count           -> number of /creds requests answered with 200
  GET  /not-json        -> 200 with a body that is not JSON
  POST /sts             -> 400 STS XML error InvalidIdentityToken
The chosen port is written to PORT_FILE once the server listens.
"""
import datetime
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

COUNT = 0


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body, content_type="application/json"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        global COUNT
        url = urlsplit(self.path)
        if url.path == "/creds":
            if self.headers.get("Authorization") != sys.argv[2]:
                self.reply(401, '{"message":"bad token"}')
                return
            ttl = int(parse_qs(url.query).get("ttl", ["3600"])[0])
            COUNT += 1
            expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=ttl)
            self.reply(200, json.dumps({
                "AccessKeyId": "ASIACONTAINER%d" % COUNT, "SecretAccessKey": "secret%d" % COUNT,
                "Token": "token%d" % COUNT, "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}))
        elif url.path == "/count":
            self.reply(200, str(COUNT), "text/plain")
        elif url.path == "/not-json":
            self.reply(200, "<html>hello</html>", "text/html")
        else:
            self.reply(404, "{}")

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.reply(400, "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code>"
                        "<Message>Token is expired</Message></Error></ErrorResponse>", "text/xml")


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    import os
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    server.serve_forever()


if __name__ == "__main__":
    main()
