#!/usr/bin/env bash
# The checks that need a GPU, as one command (never timed on a GPU yet; the CPU dry run below
# shows the steps).
#
# Runs on a machine whose `python3` has a CUDA build of PyTorch and the project's dependencies
# (torch, numpy, safetensors, tqdm, transformers, pytest); it installs nothing and needs no
# network. From the repository root:
#
#     bash scripts/gpu_check.sh [OUT_DIR]      # default OUT_DIR: runs/gpu_check
#
# 1. tests/test_gpu.py: BPSN, the fused LIF and every registered variant on CUDA against the CPU
#    references (float64, TF32 off), and the CLI training and distilling on CUDA in fp32, bf16
#    and fp16.
# 2. benchmarks/bpsn_vs_lif.py on CUDA: BPSN vs the serial LIF (individual coding) vs repeat
#    coding, training step time and memory (the issue-5 comparison; docs/RESULTS.md).
# 3. benchmarks/lif_speed.py on CUDA: fused vs reference LIF, layer and student step.
# 4. benchmarks/roofline.py on CUDA: FLOPs per step, step time (fwd/bwd/opt), achieved FLOP/s
#    against the measured fp32 GEMM peak, torch.cuda.max_memory_allocated, inference latency,
#    for every family (the packed-spike and recompute paths of issue 14). TF32 stays off (the
#    fp32 default), so the GEMM peak is the fp32 one. To compare with another checkout, run the
#    same file with that checkout's src first on PYTHONPATH and use `roofline.py --compare`.
#    Then SpikeBERT and SNN-BERT again with `memory_saving=off` (CUDA's default is on).
# Logs and JSON go to OUT_DIR; the exit status is non-zero if any part failed.
# SPIKEFORMERS_TEST_DEVICE=cpu runs the same steps on the CPU (a dry run of this script).
set -uo pipefail
out=${1:-runs/gpu_check}
mkdir -p "$out"
export SPIKEFORMERS_TEST_DEVICE=${SPIKEFORMERS_TEST_DEVICE:-cuda}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
dev=$SPIKEFORMERS_TEST_DEVICE
py=${PYTHON:-python3}
status=0

"$py" - <<'EOF' 2>&1 | tee "$out/env.txt"
import os, platform, torch, transformers
print("python", platform.python_version(), "torch", torch.__version__,
      "transformers", transformers.__version__)
if os.environ["SPIKEFORMERS_TEST_DEVICE"].startswith("cuda"):
    assert torch.cuda.is_available(), "no CUDA device visible to PyTorch"
    print("gpu", torch.cuda.get_device_name(0))
EOF
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 1

"$py" -m pytest -p no:cacheprovider tests/test_gpu.py -m gpu -rs 2>&1 | tee "$out/gpu_tests.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

"$py" benchmarks/bpsn_vs_lif.py --device "$dev" --threads 0 --steps 20 --neuron-reps 50 \
    --neurons lif bpsn repeat --out "$out/bpsn_vs_lif_$dev.json" 2>&1 | tee "$out/bpsn_vs_lif_$dev.md"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

# lif_speed writes benchmarks/results/<--out>.json; a copy goes to OUT_DIR.
"$py" benchmarks/lif_speed.py --device "$dev" --out "lif_speed_$dev" 2>&1 \
    | tee "$out/lif_speed_$dev.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
cp "benchmarks/results/lif_speed_$dev.json" "$out/" 2>/dev/null || status=1

# roofline writes benchmarks/results/<--out>.json; a copy goes to OUT_DIR.
"$py" benchmarks/roofline.py --device "$dev" --steps 5 --infer-reps 5 --out "roofline_$dev" \
    2>&1 | tee "$out/roofline_$dev.md"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
cp "benchmarks/results/roofline_$dev.json" "$out/" 2>/dev/null || status=1

# The same with memory_saving off (on CUDA "auto" means on): what packing spikes and recomputing
# the neurons cost in time and save in memory on this device (docs/RESULTS.md, "Memory against
# time"); compare with `roofline.py --compare`.
"$py" benchmarks/roofline.py --device "$dev" --steps 5 --infer-reps 5 --set memory_saving=off \
    --configs spikebert-4x256 spikebert-12x768 snnbert-quickstart snnbert-12x768 \
    --out "roofline_${dev}_memsave_off" 2>&1 | tee "$out/roofline_${dev}_memsave_off.md"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
cp "benchmarks/results/roofline_${dev}_memsave_off.json" "$out/" 2>/dev/null || status=1

echo "gpu_check: status $status, results in $out"
exit $status
