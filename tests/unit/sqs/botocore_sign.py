"""Signs randomised requests with botocore's SigV4Auth and prints one JSON object per line.

usage: python3 botocore_sign.py COUNT SEED
The C++ test (sigv4_test.cc) re-signs every request with asya::aws::Sign and compares.
"""
import base64
import datetime
import json
import random
import sys
from unittest import mock

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
PATH_EXTRA = " !$&'()*+,;=:@%\u00e9\u1234"
QUERY_EXTRA = " !\"#$%&'()*+,/:;<=>?@[\\]^`{|}\u00e9\u1234\U0001f600"
HEADER_VALUE = "".join(chr(c) for c in range(0x21, 0x7F)) + "    "
BLACKLIST = set(botocore.auth.SIGNED_HEADERS_BLACKLIST) | {
    "authorization", "host", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256"}


def text(rng, alphabet, lo, hi):
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(lo, hi)))


def one(rng):
    region = rng.choice(["us-east-1", "eu-west-1", "ap-southeast-2"])
    service = rng.choice(["sqs", "sts", "service"])
    host = rng.choice(["sqs.us-east-1.amazonaws.com", "127.0.0.1:5001", "example.amazonaws.com"])
    segments = [text(rng, UNRESERVED + PATH_EXTRA, 1, 8) for _ in range(rng.randint(0, 3))]
    path = "/" + "/".join(segments) + (rng.choice(["", "/"]) if segments else "")
    params = [(text(rng, UNRESERVED + QUERY_EXTRA, 1, 6), text(rng, UNRESERVED + QUERY_EXTRA, 0, 8))
              for _ in range(rng.randint(0, 4))]
    headers = {"Host": host}
    for _ in range(rng.randint(0, 4)):
        name = text(rng, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", 1, 12)
        if name.lower() in BLACKLIST or name.lower() in (h.lower() for h in headers):
            continue
        headers[name] = text(rng, HEADER_VALUE, 0, 20)
    body = bytes(rng.randrange(256) for _ in range(rng.randint(0, 64))) if rng.random() < 0.5 \
        else text(rng, UNRESERVED + QUERY_EXTRA, 0, 40).encode()
    token = text(rng, UNRESERVED + "+/=", 20, 60) if rng.random() < 0.5 else ""
    key = text(rng, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 16, 20)
    secret = text(rng, UNRESERVED + "+/", 30, 40)
    when = datetime.datetime(2015, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(
        seconds=rng.randrange(0, 20 * 365 * 86400))
    method = rng.choice(["GET", "POST", "PUT", "DELETE"])

    request = AWSRequest(method=method, url="http://" + host + path, headers=dict(headers),
                         data=body, params=params)
    with mock.patch("botocore.auth.get_current_datetime", return_value=when.replace(tzinfo=None)):
        botocore.auth.SigV4Auth(Credentials(key, secret, token or None), service, region).add_auth(request)
    return {"method": method, "path": path, "query": params, "headers": list(headers.items()),
            "body_b64": base64.b64encode(body).decode(), "region": region, "service": service,
            "access_key_id": key, "secret_access_key": secret, "session_token": token,
            "time": int(when.timestamp()), "authorization": request.headers["Authorization"]}


def main():
    count, seed = int(sys.argv[1]), int(sys.argv[2])
    rng = random.Random(seed)
    for _ in range(count):
        print(json.dumps(one(rng)))


if __name__ == "__main__":
    main()
