#!/usr/bin/env python3
"""Verifies DKIM signatures with dkimpy (Debian: python3-dkim), a verifier
written independently of libs/dkim. Used by libs/dkim/signer_test.cc.

  verify.py --probe
      exit 0 if the dkim module imports, 3 (with a hint) if it does not.
  verify.py --name SELECTOR._domainkey.DOMAIN --record-file FILE MESSAGE_FILE...
      verifies the topmost DKIM-Signature of each message file. The public key
      is not looked up in DNS: FILE holds the TXT record value ("v=DKIM1;
      k=rsa; p=..."), served only for the given name, so a wrong d= or s=
      fails too. Prints one line per message to stdout:
        RESULT <file name> valid
        RESULT <file name> invalid: <dkimpy's reason>
      and exits 0 once every message was checked, 2 on a usage error.
"""

import argparse
import logging
import os
import sys


def import_dkim():
    try:
        import dkim  # noqa: PLC0415
    except ImportError:
        print(
            "verify.py: the Python module 'dkim' is missing for %s: run tools/dev deps "
            "or apt-get install python3-dkim" % sys.executable,
            file=sys.stderr,
        )
        sys.exit(3)
    return dkim


class Reasons(logging.Handler):
    """Keeps what dkimpy logs about a failed verification."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        if record.levelno >= logging.INFO:
            self.messages.append(record.getMessage())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--probe", action="store_true")
    parser.add_argument("--name")
    parser.add_argument("--record-file")
    parser.add_argument("messages", nargs="*")
    args = parser.parse_args()

    dkim = import_dkim()
    if args.probe:
        return 0
    if not args.name or not args.record_file or not args.messages:
        parser.print_usage(sys.stderr)
        return 2

    with open(args.record_file, "rb") as f:
        record = f.read().strip()
    expected_name = args.name.encode("ascii").rstrip(b".").lower() + b"."

    def dnsfunc(name, timeout=5):
        if name.lower() == expected_name:
            return record
        return None

    for path in args.messages:
        with open(path, "rb") as f:
            message = f.read()
        logger = logging.getLogger("verify." + os.path.basename(path))
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
        reasons = Reasons()
        logger.addHandler(reasons)
        try:
            valid = dkim.verify(message, logger=logger, dnsfunc=dnsfunc, minkey=2048)
        except Exception as e:  # dkimpy raises on some malformed input.
            valid = False
            reasons.messages.append("%s: %s" % (type(e).__name__, e))
        name = os.path.basename(path)
        if valid:
            print("RESULT %s valid" % name)
        else:
            reason = "; ".join(reasons.messages) or "signature does not verify"
            print("RESULT %s invalid: %s" % (name, reason.replace("\n", " ")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
