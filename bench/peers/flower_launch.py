#!/usr/bin/env python3
"""flower_launch.py superlink|supernode ARGS...: flower-superlink or flower-supernode
with ARGS, and with Flower's task start deadline raised to $PEERS_FLOWER_TASK_DEADLINE_S
seconds when that is set (bench/peers/run.sh).

Flower 1.42 gives a ServerApp or ClientApp process HEARTBEAT_DEFAULT_INTERVAL (30 s) from
the claim of its task to its start (and twice that between heartbeats); a process that
misses it loses its task token, the task goes back to pending and a new process is
launched. On a machine so loaded that Python's imports take longer than 30 s, that
repeats forever. The raised deadline changes only those two timeouts, in the state the
SuperLink and SuperNode keep (flwr.supercore.corestate): no message, heartbeat interval
or byte on the wire changes."""
import os
import sys


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("superlink", "supernode"):
        sys.stderr.write(__doc__)
        return 2
    which = sys.argv.pop(1)
    deadline = os.environ.get("PEERS_FLOWER_TASK_DEADLINE_S")
    if deadline:
        from flwr.supercore.corestate import in_memory_corestate, sql_corestate
        for m in (in_memory_corestate, sql_corestate):
            m.HEARTBEAT_DEFAULT_INTERVAL = float(deadline)
    sys.argv[0] = "flower-" + which
    if which == "superlink":
        from flwr.superlink.cli import flower_superlink as entry
    else:
        from flwr.supernode.cli import flower_supernode as entry
    return entry()


if __name__ == "__main__":
    sys.exit(main())
