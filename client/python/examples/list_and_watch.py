#!/usr/bin/env python3
"""Lists the domains of every configured host, then follows the event
stream, one line per event as it arrives.

    python list_and_watch.py [--server ADDR] [--events N]

The server comes from --server or LIBVIRT_GRPC_SERVER (default
127.0.0.1:50051); --events N stops after N events (default: follow until
interrupted). A broken stream is resumed from the last sequence seen, as
the API intends: no event is missed or repeated.
"""

import argparse
import sys

import grpc

import libvirt_grpc
from libvirt_grpc.v1 import common_pb2, domain_pb2, events_pb2


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", help="host:port (default: $LIBVIRT_GRPC_SERVER or 127.0.0.1:50051)")
    ap.add_argument("--events", type=int, default=0, help="stop after this many events (0: follow)")
    args = ap.parse_args()
    try:
        c = libvirt_grpc.connect(args.server)
    except ConnectionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with c:
        try:
            listing = c.domains.ListDomains(domain_pb2.ListDomainsRequest(host="*"), timeout=30)
        except grpc.RpcError as e:
            d = libvirt_grpc.details(e)
            print(f"error: {d.code.name} {d.reason}: {d.message}", file=sys.stderr)
            return 1
        print(f"{'HOST':<12} {'NAME':<32} STATE")
        for d in listing.domains:
            state = common_pb2.DomainState.Name(d.state).removeprefix("DOMAIN_STATE_")
            print(f"{d.host:<12} {d.name:<32} {state}", flush=True)
        for u in listing.unreachable_hosts:
            print(f"{u.host:<12} (unreachable: {u.message})", flush=True)

        seen, after, epoch = 0, None, ""
        while args.events == 0 or seen < args.events:
            req = events_pb2.WatchEventsRequest()
            if after is not None:
                req.resume_after, req.epoch = after, epoch
            try:
                for m in c.events.WatchEvents(req):
                    if m.WhichOneof("item") != "event":
                        continue
                    e = m.event
                    after, epoch = e.sequence, e.epoch
                    kind = events_pb2.EventKind.Name(e.kind).removeprefix("EVENT_KIND_")
                    what = ""
                    if e.WhichOneof("details") == "lifecycle":
                        what = events_pb2.DomainLifecycleEvent.Name(e.lifecycle.event).removeprefix(
                            "DOMAIN_LIFECYCLE_EVENT_"
                        )
                    print(f"{e.sequence:>6} {e.host:<12} {e.name:<32} {kind} {what}".rstrip(), flush=True)
                    seen += 1
                    if args.events and seen >= args.events:
                        break
            except grpc.RpcError as err:
                d = libvirt_grpc.details(err)
                if d.code != grpc.StatusCode.UNAVAILABLE:
                    print(f"error: {d.code.name} {d.reason}: {d.message}", file=sys.stderr)
                    return 1
                print(f"(stream ended: {d.message}; resuming after {after})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
