"""Recorder share of step time, wall and CPU: `.venv/bin/python benchmarks/bench_recorder_share.py AGENTS LATENCY_MS STEPS`
(alternates runs with and without the recorder, best of 3 each)."""
import sys, os
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from village.bench import engine as eng
n, lat, steps = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
sc = eng.town(n)
w, wo, cw, cwo = [], [], [], []
for _ in range(3):
    r = eng.measure(n, latency_ms=lat, concurrency=64, steps=steps, scenario=sc, record=True); w.append(r.wall_s); cw.append(r.cpu_s)
    r = eng.measure(n, latency_ms=lat, concurrency=64, steps=steps, scenario=sc, record=False); wo.append(r.wall_s); cwo.append(r.cpu_s)
print(f"{os.getcwd()} n={n} lat={lat}: wall share {100*(min(w)-min(wo))/min(w):.1f}% ({1000*min(w)/steps:.2f} vs {1000*min(wo)/steps:.2f} ms/step); "
      f"CPU share {100*(min(cw)-min(cwo))/min(cw):.1f}% ({1000*min(cw)/steps:.2f} vs {1000*min(cwo)/steps:.2f} ms/step)")
