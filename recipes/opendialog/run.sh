#!/usr/bin/env bash
# OpenDialog-style recipe: curate → prepare → train → synthesize → evaluate.
#
#   bash recipes/opendialog/run.sh                          # all stages on the bundled sample (CPU, minutes)
#   bash recipes/opendialog/run.sh --stage 3 --stop-stage 3 # one stage
#   bash recipes/opendialog/run.sh --input 'calls/**/*.mp3' --config base --num-steps 60000 \
#        --init-from k2-fsa/ZipVoice/zipvoice --device cuda   # a real run on a GPU box
#
# Stages:
#   0  set-up (the project's .venv)
#   1  curate: beam_runner.py → data/curated (Parquet tables, Lhotse cuts, ZipVoice TSV, report)
#   2  prepare: all curated cuts → data/prepared/cuts.jsonl.gz, interop exports, a test list
#   3  train: python -m model.train → exp/<name>
#   4  synthesize the test list: python -m model.infer → exp/<name>/samples
#   5  evaluate: python -m model.evaluate → exp/<name>/results.md
# Everything is written under recipes/opendialog/{data,exp} (or --dir DIR); delete them to start over.
set -euo pipefail

stage=0
stop_stage=5
input=""                 # default: the bundled sample
config=tiny              # tiny (CPU) | base (ZipVoice scale, GPU)
num_steps=300
init_from=""             # e.g. k2-fsa/ZipVoice/zipvoice or a local upstream model dir
device=auto
guidance=""             # stage 4: classifier-free guidance (default: the checkpoint's own)
name=""
workdir=""               # where data/ and exp/ go (default: next to this script)

while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage|--stop_stage) stop_stage=$2; shift 2 ;;
    --input) input=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --num-steps|--num_steps) num_steps=$2; shift 2 ;;
    --init-from|--init_from) init_from=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --guidance-scale|--guidance_scale) guidance=$2; shift 2 ;;
    --name) name=$2; shift 2 ;;
    --dir) workdir=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
py="$repo/.venv/bin/python"
mkdir -p "${workdir:-$here}"
workdir=$(cd "${workdir:-$here}" && pwd)
data="$workdir/data"
exp="$workdir/exp/${name:-$config}"
cd "$repo"

log() { echo "$(date '+%Y-%m-%d %H:%M:%S') [stage $1] $2"; }
run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }

if run_stage 0; then
  log 0 "set-up"
  bash scripts/setup.sh
fi

if run_stage 1; then
  log 1 "curate ${input:-the bundled sample} → $data/curated"
  "$py" beam_runner.py --runner=DirectRunner --output "$data/curated" ${input:+--input "$input"}
fi

if run_stage 2; then
  log 2 "prepare cuts, interop exports and the test list"
  mkdir -p "$data/prepared"
  "$py" "$here/local/prepare.py" --curated "$data/curated" --out "$data/prepared"
  "$py" -m pipeline.output.interop to-zipvoice-tsv --cuts "$data/prepared/cuts.jsonl.gz" \
    --out "$data/prepared/zipvoice.tsv"
  "$py" -m pipeline.output.interop to-opendialog --cuts "$data/prepared/cuts.jsonl.gz" \
    --out "$data/prepared/opendialog"
fi

if run_stage 3; then
  log 3 "train $config for $num_steps steps → $exp"
  rm -rf "$exp"
  # duration buckets need enough cuts to estimate their bins: none for a toy corpus
  ncuts=$(gzip -dc "$data/prepared/cuts.jsonl.gz" | wc -l)
  buckets=$([ "$ncuts" -ge 300 ] && echo 30 || echo 1)
  if [ -n "$init_from" ]; then
    # fine-tuning an upstream model, as upstream's dialogue stage (on GPUs: --config base
    # --max-duration 500 --amp bf16, torchrun --nproc_per_node=8): the trainer's defaults,
    # lr 1e-4 fixed, upstream's scheduled dropout
    schedule=(--init-from "$init_from")
  else
    # from scratch on a toy corpus (CPU): what made the tests' tiny model memorise its cut:
    # a short warm-up, cosine decay from 3e-3, tight gradient clipping, no dropout
    schedule=(--lr 3e-3 --lr-schedule cosine --warmup-steps 20 --grad-clip 0.05
              --ema-decay 0.995 --regularisation none)
  fi
  "$py" -m model.train --cuts "$data/prepared/cuts.jsonl.gz" --exp-dir "$exp" \
    --config "$config" --num-steps "$num_steps" --device "$device" --no-progress \
    --num-buckets "$buckets" --save-every "$num_steps" --log-every 50 "${schedule[@]}"
fi

if run_stage 4; then
  log 4 "synthesize $data/prepared/test_list.tsv → $exp/samples"
  "$py" -m model.infer --checkpoint "$exp" --test-list "$data/prepared/test_list.tsv" \
    --res-dir "$exp/samples" --device "$device" ${guidance:+--guidance-scale "$guidance"}
fi

if run_stage 5; then
  log 5 "evaluate → $exp/results.md"
  # reference row: the curated dialogues' real audio, scored by the same metric models
  "$py" -m model.evaluate --test-list "$data/prepared/test_list.tsv" \
    --res-dir "$data/prepared/ground_truth" --out "$exp/results.md" \
    --model-name "ground truth (curated audio)" --params "-"
  "$py" -m model.evaluate --test-list "$data/prepared/test_list.tsv" --res-dir "$exp/samples" \
    --out "$exp/results.md" --append --model-name "$config (ours, $num_steps steps)" \
    --params "$("$py" -c "import sys; from model.network.checkpoint import load_checkpoint as load
print(f'{load(sys.argv[1]).network.num_parameters() / 1e6:.2f}M')" "$exp")" \
    --synthesis-times "$exp/samples/synthesis_times.tsv"
  cat "$exp/results.md"
fi
log done "outputs: $data, $exp"
