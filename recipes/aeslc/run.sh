#!/usr/bin/env bash
# AESLC email -> subject: SentencePiece BPE 8k + Transformer training (recipes/aeslc/transformer.yaml,
# sources truncated to 80 tokens), averaging, beam 5 on dev, ROUGE-1/2/L F1 (rouge-score, stemmed)
# against dev.subject and against the three annotations dev.ann0-2 (each, mean, best per email).
# Usage (from the repository root): recipes/aeslc/run.sh   (env: see recipes/common.sh)
source "$(dirname "$0")/../common.sh"
A=$DATA/aeslc
NAME=aeslc_transformer
train $NAME recipes/aeslc/transformer.yaml data.train=$A/train data.dev=$A/dev
average $NAME
evaluate $NAME dev $A/dev.email $A/dev.subject --max-len 40 --rouge --rouge-ref $A/dev.ann0 $A/dev.ann1 $A/dev.ann2
