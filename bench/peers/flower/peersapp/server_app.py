"""bench/peers ServerApp: Flower's own FedAvg (weighted by the members' token counts, the
"num-examples" each ClientApp reports) from aulac's round-0 model, for the policy's
rounds; writes the final model in aulac's layout (model.safetensors with the tensor
names aulac's gpt2_save writes, plus the round-0 config.json) so that `aulac eval`
evaluates it with the same code as aulac's own final model, and timings.json."""
import json
import os
import shutil
import time

from flwr.app import Array, ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    import numpy as np
    from safetensors.numpy import load_file, save_file

    cfg = context.run_config
    round0 = str(cfg["round0"])
    out = str(cfg["out-dir"])
    members = int(cfg["members"])
    rounds = int(cfg["rounds"])
    t0 = time.time()
    initial = load_file(os.path.join(round0, "model.safetensors"))
    names = list(initial)
    # numpy only: the ServerApp does not import torch (less memory for Flower's server)
    arrays = ArrayRecord({n: Array.from_numpy_ndarray(np.ascontiguousarray(initial[n]))
                          for n in names})
    stamps = []

    def on_round(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        stamps.append([server_round, time.time()])
        return MetricRecord({})

    strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=members,
                      min_available_nodes=members, weighted_by_key="num-examples")
    result = strategy.start(grid=grid, initial_arrays=arrays, num_rounds=rounds,
                            train_config=ConfigRecord({}), evaluate_fn=on_round)
    final = {n: np.ascontiguousarray(a.numpy(), dtype=np.float32)
             for n, a in result.arrays.items()}
    missing = [n for n in names if n not in final]
    if missing:
        raise RuntimeError("the final model lacks %s" % ", ".join(missing[:3]))
    os.makedirs(out, exist_ok=True)
    save_file({n: final[n] for n in names}, os.path.join(out, "model.safetensors.tmp"),
              metadata={"format": "pt"})
    os.replace(os.path.join(out, "model.safetensors.tmp"), os.path.join(out, "model.safetensors"))
    shutil.copy(os.path.join(round0, "config.json"), os.path.join(out, "config.json"))
    train = {str(r): dict(m) for r, m in result.train_metrics_clientapp.items()}
    with open(os.path.join(out, "timings.json.tmp"), "w") as f:
        json.dump({"start": t0, "rounds": stamps, "train_metrics": train}, f)
    os.replace(os.path.join(out, "timings.json.tmp"), os.path.join(out, "timings.json"))

