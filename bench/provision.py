#!/usr/bin/python3
"""Provisioning benchmark for bench/run: COUNT grid.server.add requests from CLIENTS concurrent
clients, each signed as GoGrid clients sign, then waits (bounded) until every server's job has
finished. Add->On per server is the time from its job's creation to the job's Succeeded entry
(gridd's own timestamps); the rate is servers over the time from the first request to the last
server On. Prints one line of JSON.

    provision.py URL API_KEY SECRET --count N --clients C --image NAME --ips-prefix 100.64.
"""

import argparse
import hashlib
import http.client
import json
import sys
import threading
import time
import urllib.parse


class Client:
    def __init__(self, url, api_key, secret):
        parsed = urllib.parse.urlparse(url)
        self.connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
        self.api_key = api_key
        self.secret = secret

    def call(self, method, params):
        sig = hashlib.md5(f"{self.api_key}{self.secret}{int(time.time())}".encode()).hexdigest()
        query = urllib.parse.urlencode(
            list(params) + [("api_key", self.api_key), ("sig", sig), ("v", "1.8"), ("format", "json")])
        self.connection.request("GET", f"/api/{method}?{query}")
        response = self.connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"{method}: HTTP {response.status}: {body[:300]!r}")
        return json.loads(body)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("api_key")
    parser.add_argument("secret")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--image", default="debian-12-amd64")
    parser.add_argument("--ips-prefix", default="100.64.")
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()

    setup = Client(args.url, args.api_key, args.secret)
    ips = [ip["ip"] for ip in setup.call("grid/ip/list", [("ip.state", "Unassigned"),
                                                          ("ip.type", "Public")])["list"]
           if ip["ip"].startswith(args.ips_prefix)]
    if len(ips) < args.count:
        sys.exit(f"provision.py: {args.count} servers but only {len(ips)} free addresses")

    failures = []
    next_index = [0]
    lock = threading.Lock()

    def worker():
        client = Client(args.url, args.api_key, args.secret)
        while True:
            with lock:
                index = next_index[0]
                next_index[0] += 1
            if index >= args.count:
                return
            try:
                client.call("grid/server/add", [("name", f"prov-{index:06}"), ("image", args.image),
                                                ("server.ram", "1GB"), ("ip", ips[index])])
            except Exception as error:  # reported below; the benchmark fails
                with lock:
                    failures.append(str(error))
                return

    started_ms = time.time() * 1000
    threads = [threading.Thread(target=worker) for _ in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    added_ms = time.time() * 1000
    if failures:
        sys.exit(f"provision.py: server.add failed: {failures[0]}")

    jobs = []
    deadline = time.time() + args.timeout
    while time.time() < deadline:
        jobs = setup.call("grid/job/list", [("job.command", "CreateVirtualServer"),
                                            ("num_items", str(args.count * 2))])["list"]
        finished = [job for job in jobs if job["currentstate"]["name"] in ("Succeeded", "Failed")]
        if len(jobs) >= args.count and len(finished) == len(jobs):
            break
        time.sleep(0.2)
    else:
        sys.exit(f"provision.py: not every server was On within {args.timeout:.0f} s")

    latencies = []
    last_on_ms = started_ms
    failed = 0
    for job in jobs:
        succeeded = [entry["updatedon"] for entry in job["history"]
                     if entry["state"]["name"] == "Succeeded"]
        if not succeeded:
            failed += 1
            continue
        latencies.append(succeeded[-1] - job["createdon"])
        last_on_ms = max(last_on_ms, succeeded[-1])
    latencies.sort()

    def percentile(p):
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else 0

    seconds = (last_on_ms - started_ms) / 1000
    print(json.dumps({
        "servers": len(latencies), "failed": failed, "seconds": round(seconds, 3),
        "servers_per_second": round(len(latencies) / seconds, 1) if seconds > 0 else 0,
        "adds_per_second": round(args.count / ((added_ms - started_ms) / 1000), 1),
        "p50_ms": percentile(0.5), "p99_ms": percentile(0.99)}))


if __name__ == "__main__":
    main()
