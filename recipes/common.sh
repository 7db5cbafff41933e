# Shared steps of the recipes; sourced by each recipes/*/run.sh. One command from raw text to a
# scored model: SentencePiece + model training (seq2seq train), checkpoint averaging, beam search
# on the test set and sacreBLEU/chrF (or ROUGE) with their signatures.
#
# Environment (all optional):
#   DATA     data root holding multi30k/, tatoeba_fra_eng/, aeslc/   (default ../shared/data)
#   RUNS     where run directories go                                  (default runs/recipes)
#   MINUTES  training wall-time budget in minutes                      (default: the config's)
#   THREADS  torch CPU threads                                         (default: the config's)
#   SEQ2SEQ  the command                                               (default: seq2seq)
#   AVERAGE  how many of the last checkpoints to average               (default 5)
#   AVERAGE_CHOICES  with a dev set (Multi30k: val), the counts to choose among by dev BLEU
#                                                                      (default "1 2 3 5")
#   SKIP_TRAIN=1  reuse the trained run in $RUNS/NAME: average, decode and score again only
set -euo pipefail
DATA=${DATA:-../shared/data}
RUNS=${RUNS:-runs/recipes}
SEQ2SEQ=${SEQ2SEQ:-seq2seq}
AVERAGE=${AVERAGE:-5}
AVERAGE_CHOICES=${AVERAGE_CHOICES:-1 2 3 5}

# train NAME CONFIG [--set overrides...]: trains into $RUNS/NAME, recording the wall time.
train() {
  local name=$1 config=$2; shift 2
  local run=$RUNS/$name extra=()
  [ -n "${MINUTES:-}" ] && extra+=("train.max_minutes=$MINUTES")
  [ -n "${THREADS:-}" ] && extra+=("train.threads=$THREADS")
  if [ "${SKIP_TRAIN:-0}" = 1 ]; then
    [ -f "$run/last.pt" ] || { echo "SKIP_TRAIN=1: no trained run in $run (last.pt)" >&2; exit 2; }
    echo "== $name: SKIP_TRAIN=1, reusing the run trained in $(cat "$run/train_seconds") s"
    return
  fi
  mkdir -p "$run"
  local start; start=$(date +%s)
  $SEQ2SEQ train "$config" --out "$run" --set "$@" "${extra[@]}"
  echo "$(( $(date +%s) - start ))" > "$run/train_seconds"
  echo "== $name: trained in $(cat "$run/train_seconds") s (tokenizers, model, validations)"
}

# average NAME [DEV_SRC DEV_REF]: averages the last $AVERAGE numbered checkpoints into
# $RUNS/NAME/averaged.pt; with a dev set, the last N for each N of $AVERAGE_CHOICES instead, each
# decoded on it (beam 5), keeping the best by BLEU (a run stopped while its dev score still climbs
# does better with fewer; a flat end of training with more)
average() {
  local run=$RUNS/$1; shift
  local n; n=$(find "$run" -maxdepth 1 -name 'ckpt-*.pt' | wc -l)
  if [ "$n" -eq 0 ]; then
    cp "$run/best.pt" "$run/averaged.pt"
  elif [ $# -eq 2 ]; then
    local counts=() c
    for c in $AVERAGE_CHOICES; do [ "$c" -le "$n" ] && counts+=("$c"); done
    [ ${#counts[@]} -gt 0 ] || counts=("$n")
    $SEQ2SEQ average "$run" --last "${counts[@]}" --dev "$1" "$2" --out "$run/averaged.pt" \
      | tee "$run/average.txt"
  else
    $SEQ2SEQ average "$run" --last "$(( n < AVERAGE ? n : AVERAGE ))" --out "$run/averaged.pt"
  fi
}

# evaluate NAME SPLIT SRC REF [options]: beam 5 on SRC, scored against REF; JSON in NAME/SPLIT.json
evaluate() {
  local name=$1 run=$RUNS/$1 split=$2 src=$3 ref=$4; shift 4
  $SEQ2SEQ evaluate "$run/averaged.pt" --src "$src" --ref "$ref" --beam-size 5 \
    --output "$run/$split.hyp" --json -q "$@" > "$run/$split.json"
  echo "== $name $split:"; cat "$run/$split.json"; echo
}

# multi30k SRC TGT ARCH: the Multi30k recipe of one direction and architecture
# (recipes/multi30k/ARCH.yaml), scored on val and test_2016_flickr.
multi30k() {
  local s=$1 t=$2 arch=$3 m=$DATA/multi30k name=multi30k_$1_$2_$3
  train "$name" "recipes/multi30k/$arch.yaml" "data.train=$m/train" "data.dev=$m/val" \
    "data.src_suffix=$s" "data.tgt_suffix=$t"
  average "$name" "$m/val.$s" "$m/val.$t"
  evaluate "$name" val "$m/val.$s" "$m/val.$t"
  evaluate "$name" test_2016_flickr "$m/test_2016_flickr.$s" "$m/test_2016_flickr.$t"
}
