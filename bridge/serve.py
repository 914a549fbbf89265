"""`streamvideo serve`: one Server (server.py), a Front before N local worker processes (`--workers`,
`--devices`, front.py), or a worker attached to a front elsewhere (`--attach`); see PROTOCOL.md.

    streamvideo serve --model default                      # a server on loopback
    streamvideo serve --workers 2 --threads 1              # a front and two local workers
    streamvideo serve --attach tcp://front:5557 --front-key server.key --worker-key NAME.key_secret
    streamvideo serve --web 8000                           # and a page to play in a browser (web.py)
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
from dataclasses import replace

import zmq

from streamvideo.engine.speedups import add_speedups_argument
from streamvideo.engine.threads import add_threads_argument, positive_int, set_threads

from .endpoint import Endpoint, ServerConfig
from .front import Front, front_config
from .protocol import Limits
from .server import Server

log = logging.getLogger("streamvideo.bridge")


def device_list(text: str) -> tuple[str, ...]:
    """argparse type: comma-separated torch devices, e.g. cuda:0,cuda:1."""
    devices = tuple(d.strip() for d in text.split(","))
    if not all(devices):
        raise argparse.ArgumentTypeError(f"expected comma-separated devices such as cuda:0,cuda:1, got {text!r}")
    return devices


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = ServerConfig()
    parser.add_argument("--bind", default=d.bind, help="control (ROUTER) endpoint; loopback by default")
    parser.add_argument("--pub", default=d.pub, help="real-time stream (PUB) endpoint")
    parser.add_argument("--model", action="append", help="model clients may open (repeatable; the first is "
                                                         f"the default); default {d.models[0]!r}")
    parser.add_argument("--device", default=d.device, help="torch device for the generators")
    parser.add_argument("--max-sessions", type=int, default=d.limits.max_sessions)
    parser.add_argument("--max-batch", type=positive_int, default=d.max_batch,
                        help="sessions of one model stepped in one forward pass (1: one at a time, bit-exact "
                             "with an in-process generator)")
    parser.add_argument("--idle-timeout", type=float, default=d.limits.idle_timeout_ms / 1000,
                        help="seconds without a request after which a session is closed")
    parser.add_argument("--heartbeat", type=float, default=d.heartbeat_ms / 1000,
                        help="heartbeat interval in seconds (ZMTP, client pings, front/worker link)")
    parser.add_argument("--curve-keys", metavar="DIR", help="CURVE keys: DIR/server.key_secret and "
                                                            "DIR/authorized_clients/*.key")
    parser.add_argument("--insecure", action="store_true", help="allow plaintext on non-loopback addresses")
    parser.add_argument("--web", metavar="[HOST:]PORT",
                        help="also serve a page to play in a browser, on loopback unless HOST says otherwise (then "
                             "its URL carries an access token); docs/web.md")
    add_threads_argument(parser)
    add_speedups_argument(parser)
    group = parser.add_argument_group("workers", "one endpoint in front of several worker processes "
                                                 "(PROTOCOL.md section 6); clients see the same protocol")
    group.add_argument("--workers", type=positive_int, metavar="N", help="serve through N local worker processes (this "
                                                            "process is their front and restarts a dead one); "
                                                            "--threads is then per worker")
    group.add_argument("--devices", type=device_list, metavar="LIST", help="one torch device per local worker, e.g. "
                                                           "cuda:0,cuda:1 (sets --workers)")
    group.add_argument("--worker-bind", metavar="ENDPOINT", help="front: where workers attach (default a free "
                                                                 "loopback port; e.g. tcp://0.0.0.0:5557 for "
                                                                 "remote workers, with --curve-keys)")
    group.add_argument("--worker-pub", metavar="ENDPOINT", help="front: where workers publish streams (default "
                                                                "the --worker-bind host, a free port)")
    group.add_argument("--attach", metavar="ENDPOINT", help="run only a worker, attached to the front at "
                                                            "ENDPOINT (its --worker-bind)")
    group.add_argument("--front-key", metavar="FILE", help="with --attach: the front's server.key (CURVE)")
    group.add_argument("--worker-key", metavar="FILE", help="with --attach: this worker's NAME.key_secret, "
                                                            "listed in the front's authorized_clients/")
    group.add_argument("--front-pid", type=int, help=argparse.SUPPRESS)  # set by a local front: stop with it


def is_front(args: argparse.Namespace) -> bool:
    return bool(args.workers or args.devices or args.worker_bind or args.worker_pub)


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    if args.attach and (is_front(args) or args.curve_keys):
        raise ValueError("--attach runs only a worker: it takes no --workers, --devices, --worker-bind, "
                         "--worker-pub or --curve-keys (the link's keys are --front-key and --worker-key)")
    if not args.attach and (args.front_key or args.worker_key):
        raise ValueError("--front-key and --worker-key are a worker's keys: use them with --attach")
    if "compile" in args.speedups:
        raise ValueError("--speedups compile is not offered by serve: batched sessions change the batch size from "
                         "pass to pass, and each size would compile again; use the default speed-ups")
    limits = replace(Limits(), max_sessions=args.max_sessions, idle_timeout_ms=round(args.idle_timeout * 1000))
    return ServerConfig(bind=args.bind, pub=args.pub, models=tuple(args.model or ServerConfig.models),
                        device=args.device, curve_keys=args.curve_keys, insecure=args.insecure,
                        heartbeat_ms=round(args.heartbeat * 1000), max_batch=args.max_batch, limits=limits,
                        attach=args.attach, front_key=args.front_key, worker_key=args.worker_key,
                        front_pid=args.front_pid, speedups=args.speedups)


def endpoint_from_args(args: argparse.Namespace) -> Endpoint:
    """A Front when --workers, --devices or --worker-bind say so; else a Server (a worker with --attach)."""
    config = config_from_args(args)
    if is_front(args):
        return Front(front_config(config, args.workers, args.devices, args.threads, args.worker_bind,
                                  args.worker_pub))
    log.info("torch CPU threads: %d", set_threads(args.threads))
    return Server(config)


def run(args: argparse.Namespace) -> int:
    role = f" worker {os.getpid()}" if args.attach else ""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s %(name)s{role} %(message)s")
    try:
        endpoint = endpoint_from_args(args)
        if args.web is not None:
            if args.attach:
                raise ValueError("--web serves a page from a server or a front; a worker (--attach) takes none")
            try:
                from .web import serve_web
            except ImportError as err:
                raise ValueError(f"--web needs the web extra: pip install 'streamvideo[web]' ({err})") from None
            return serve_web(endpoint, args.web)
        signal.signal(signal.SIGTERM, lambda *_: endpoint.stop())
        endpoint.serve_forever()
    except KeyboardInterrupt:
        pass
    except (ValueError, OSError, TimeoutError, zmq.ZMQError) as err:
        print(f"streamvideo serve: {err}")
        return 2
    return 0
