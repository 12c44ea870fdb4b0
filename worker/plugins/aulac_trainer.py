"""aulac_trainer: the plug-in protocol pieces the reference plug-ins share
(worker/TRAINER.md): the built-in sampler's random generator, the corpus's
validation split, and the serve-mode message loop. Standard library only.

numpy_gpt2.py and torch_causal_lm.py import it from their own directory: run them
from the repository (worker/plugins/), or copy aulac_trainer.py along with them.
"""
import json
import math
import time

PROTOCOL = 1
CHUNK = 4096                # worker/data.h: the split's unit, in corpus bytes
MASK64 = (1 << 64) - 1


# ---- the built-in sampler (model/rng.c: splitmix64-seeded xoshiro256**) -------------

class Rng:
    """xoshiro256** seeded through splitmix64 (model/rng.c)."""

    def __init__(self, seed):
        x = seed & MASK64
        self.s = []
        for _ in range(4):
            x = (x + 0x9E3779B97F4A7C15) & MASK64
            z = x
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
            self.s.append(z ^ (z >> 31))

    def next(self):
        s = self.s
        r = (s[1] * 5) & MASK64
        r = (((r << 7) | (r >> 57)) & MASK64) * 9 & MASK64
        t = (s[1] << 17) & MASK64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = ((s[3] << 45) | (s[3] >> 19)) & MASK64
        return r

    def below(self, n):
        """Uniform in [0, n), without modulo bias (rng_below)."""
        limit = MASK64 - MASK64 % n
        while True:
            x = self.next()
            if x < limit:
                return x % n


# ---- the corpus's validation split (worker/data.h) ----------------------------------

def validation_ppm(fraction):
    """data.validation_fraction in parts per million, as the worker rounds it."""
    return int(math.floor(fraction * 1e6 + 0.5))


def validation_before(i, ppm):
    """How many of the chunks [0, i) are validation chunks: chunk i is one exactly when
    validation_before(i + 1) > validation_before(i). Works on ints and NumPy arrays."""
    return (i * ppm + 500000) // 1000000


# ---- serve mode (TRAINER.md: JSON lines on stdin and stdout) ------------------------

def read_message(stream, log):
    """The worker's next message from stream: a dict; {"type": "exit"} at the end of
    input; None for a blank line or one that is not a JSON object (logged)."""
    line = stream.readline()
    if not line:
        return {"type": "exit"}
    line = line.strip()
    if not line:
        return None
    try:
        msg = json.loads(line)
    except ValueError:
        msg = None
    if not isinstance(msg, dict):
        log("ignoring a line from the worker that is not a JSON object: %.80s" % line)
        return None
    return msg


def serve_rounds(next_message, send, read_plan, train, expected, log):
    """The serve loop: for each "round" message, plan = read_plan(path) and
    train(plan, progress); then a "done" line, or an "error" line naming the round and
    what went wrong (an exception of the class expected: its message; any other: its
    type too; the process stays up for the next round). progress(step, steps, loss,
    ...) sends "progress" lines, at most about two a second and always the last step.
    Returns 0 at "exit" (or the end of input)."""
    while True:
        msg = next_message()
        if msg is None:
            continue
        kind = msg.get("type")
        if kind == "exit":
            return 0
        if kind != "round":
            log("ignoring a message of type %r" % kind)
            continue
        rnd = None
        try:
            plan = read_plan(str(msg.get("plan", "")))
            rnd = plan.get("round")
            last = [None]

            def progress(step, steps, loss, *_, rnd=rnd, last=last):
                now = time.monotonic()
                if step == steps or last[0] is None or now - last[0] >= 0.5:
                    last[0] = now
                    send({"type": "progress", "round": rnd, "step": step, "steps": steps,
                          "loss": loss})
            train(plan, progress)
            send({"type": "done", "round": rnd})
        except expected as e:
            log("round %s: %s" % (rnd, e))
            send({"type": "error", "round": rnd, "message": str(e)})
        except Exception as e:  # noqa: BLE001 - e.g. out of memory: fails this round only
            log("round %s: %s: %s" % (rnd, type(e).__name__, e))
            send({"type": "error", "round": rnd, "message": "%s: %s" % (type(e).__name__, e)})
