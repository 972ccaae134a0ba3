#!/usr/bin/python3
"""Drives gridd's HTTPS listener with Debian's python3-libcloud GoGrid compute driver.

Usage: /usr/bin/python3 libcloud_tls.py --host 127.0.0.1 --port 8443 --key KEY --secret SECRET --ca-file CERT

Checks that libcloud, verifying the server certificate against CERT (gridd's self-signed one),
lists images, locations, sizes and servers over TLS; that a bad secret still raises
InvalidCredsError; and that the same driver trusting only the system's CA bundle refuses the
connection. Exits 0 on success, 1 with a message on failure.
"""

import argparse
import os
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gogrid_steps import argument_parser, check, connect, ok, run_steps, step  # noqa: E402

from libcloud.common.types import InvalidCredsError  # noqa: E402
from libcloud.compute.drivers.gogrid import GoGridNodeDriver  # noqa: E402


def run(args, created):
    step("connect over HTTPS, verifying the certificate against %s" % args.ca_file)
    driver = connect(GoGridNodeDriver, args)
    check(driver.connection.secure == 1, "driver is not using HTTPS")
    images = driver.list_images()
    check(len(images) > 0, "no images over TLS")
    ok("%d image(s)" % len(images))

    step("list locations, sizes and servers over TLS")
    locations = driver.list_locations()
    check(len(locations) > 0, "no locations over TLS")
    check(len(driver.list_sizes()) > 0, "no sizes over TLS")
    driver.list_nodes()
    ok("%d location(s)" % len(locations))

    step("a wrong secret is refused over TLS")
    bad = connect(GoGridNodeDriver, argparse.Namespace(**{**vars(args), "secret": "wrong"}))
    try:
        bad.list_images()
    except InvalidCredsError:
        ok()
    else:
        check(False, "a wrong secret was accepted")

    step("trusting only the system CA bundle, the self-signed certificate is refused")
    untrusting = connect(
        GoGridNodeDriver,
        argparse.Namespace(**{**vars(args), "ca_file": "/etc/ssl/certs/ca-certificates.crt"}),
    )
    try:
        untrusting.list_images()
    except (ssl.SSLError, OSError) as error:
        ok(type(error).__name__)
    else:
        check(False, "an unverifiable certificate was accepted")


def main():
    args = argument_parser(__doc__.splitlines()[0]).parse_args()
    if not args.ca_file:
        print("--ca-file is required", flush=True)
        return 1
    return run_steps(args, run, lambda args, created: None, "TLS")


if __name__ == "__main__":
    sys.exit(main())
