#!/usr/bin/python3
"""Uses gridd through Debian's python3-libcloud GoGrid driver: lists the account's servers,
adds one on a free public IP, waits until it runs, and (with --delete) deletes it again.

    GOGRID_URL=http://127.0.0.1:8080 GOGRID_API_KEY=... GOGRID_SECRET=... \\
        /usr/bin/python3 -I scripts/examples/gogrid-libcloud.py [--delete] [NAME]

libcloud signs every request itself (md5 of key, secret and time); only the host, port and
scheme have to point at gridd instead of api.gogrid.com.
"""

import argparse
import os
import sys
import time
from urllib.parse import urlsplit

from libcloud.compute.drivers.gogrid import GoGridNodeDriver
from libcloud.compute.types import NodeState

WAIT_SECONDS = 60


def connect():
    url = urlsplit(os.environ.get("GOGRID_URL", "http://127.0.0.1:8080"))
    secure = url.scheme == "https"
    port = url.port or (443 if secure else 80)
    driver = GoGridNodeDriver(os.environ["GOGRID_API_KEY"], os.environ["GOGRID_SECRET"],
                              host=url.hostname, port=port, secure=secure)
    # Older libcloud releases ignore the constructor's host and port; set them on the
    # connection too.
    driver.connection.host = url.hostname
    driver.connection.port = port
    driver.connection.secure = secure
    return driver


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delete", action="store_true", help="delete the server at the end")
    parser.add_argument("name", nargs="?", default="libcloud-example-%d" % os.getpid())
    args = parser.parse_args()
    for variable in ("GOGRID_API_KEY", "GOGRID_SECRET"):
        if not os.environ.get(variable):
            sys.exit("set %s" % variable)

    driver = connect()
    print("servers in the account: %d" % len(driver.list_nodes()))

    # libcloud shows an image by its id and friendly name (GoGrid's friendlyName).
    image_name = os.environ.get("GOGRID_IMAGE_FRIENDLY_NAME", "Debian 12 (64-bit)")
    image = next((i for i in driver.list_images() if image_name in (i.id, i.name)), None)
    size = next((s for s in driver.list_sizes() if s.id == "512MB"), None)
    free = driver.ex_list_ips(public=True, assigned=False)
    if image is None:
        sys.exit("no image %s" % image_name)
    if size is None:
        sys.exit("no 512MB size (sizes: %s)" % sorted(s.id for s in driver.list_sizes()))
    if not free:
        sys.exit("no unassigned public IP left in this account")
    print("adding server %s from %s (%d free public IPs)" % (args.name, image.name, len(free)))
    # No ex_ip: libcloud takes the first unassigned public IP itself (and some releases fail
    # when ex_ip is given).
    driver.create_node(name=args.name, image=image, size=size)

    # The add runs as a job; libcloud sees the server as PENDING until it has finished.
    deadline = time.monotonic() + WAIT_SECONDS
    node = None
    while time.monotonic() < deadline:
        node = next((n for n in driver.list_nodes() if n.name == args.name), None)
        if node is not None and node.state == NodeState.RUNNING:
            break
        time.sleep(0.5)
    if node is None or node.state != NodeState.RUNNING:
        sys.exit("server %s is not running after %d s" % (args.name, WAIT_SECONDS))
    print("server %s is running on %s (id %s)" % (node.name, node.public_ips[0], node.id))

    if args.delete:
        driver.destroy_node(node)
        print("deleting %s" % node.name)


if __name__ == "__main__":
    main()
