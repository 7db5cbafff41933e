#!/usr/bin/env bash
# Tatoeba English -> French Transformer: SentencePiece BPE 8k + training
# (recipes/tatoeba/transformer.yaml), averaging, beam 5 on dev (the corpus ships no test set here),
# sacreBLEU + chrF with signatures.
# Usage (from the repository root): recipes/tatoeba/en_fr_transformer.sh   (env: see recipes/common.sh)
source "$(dirname "$0")/../common.sh"
T=$DATA/tatoeba_fra_eng
NAME=tatoeba_en_fr_transformer
train $NAME recipes/tatoeba/transformer.yaml data.train=$T/train data.dev=$T/dev
average $NAME
evaluate $NAME dev $T/dev.en $T/dev.fr
