"""The end-to-end tests' multi-rig job: before it trains (examples/ddp's train.py, run
in the same process), each rank tries to reach what it must not: every address in
PROBE_TARGETS (host:port, comma-separated) and a name through DNS. It prints one line,
"probe {json}", with what each attempt gave, and rank 0 also writes it to probe.json in
its output, which becomes part of the checkpoint."""
import json
import os
import runpy
import socket
import sys

results = {}
for target in filter(None, os.environ.get("PROBE_TARGETS", "").split(",")):
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=3).close()
        results["tcp:" + target] = "connected"
    except OSError as e:
        results["tcp:" + target] = "error: %s" % e
try:
    socket.getaddrinfo("example.com", 443)
    results["dns:example.com"] = "resolved"
except OSError as e:
    results["dns:example.com"] = "error: %s" % e
line = json.dumps(results, sort_keys=True)
print("probe " + line, flush=True)
out = sys.argv[sys.argv.index("--out") + 1] if "--out" in sys.argv else "/out"
if os.environ.get("RANK", "0") == "0":
    with open(os.path.join(out, "probe.json"), "w") as f:
        f.write(line)

sys.argv = ["/train.py"] + sys.argv[1:]
runpy.run_path("/train.py", run_name="__main__")
