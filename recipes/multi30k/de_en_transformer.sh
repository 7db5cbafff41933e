#!/usr/bin/env bash
# Multi30k de -> en, transformer: SentencePiece BPE 8k + training (recipes/multi30k/transformer.yaml),
# averaging of the last checkpoints, beam 5 on val and test_2016_flickr, sacreBLEU + chrF.
# Usage (from the repository root): recipes/multi30k/de_en_transformer.sh   (env: see recipes/common.sh)
source "$(dirname "$0")/../common.sh"
M=$DATA/multi30k
NAME=multi30k_de_en_transformer
train $NAME recipes/multi30k/transformer.yaml data.train=$M/train data.dev=$M/val \
  data.src_suffix=de data.tgt_suffix=en
average $NAME
evaluate $NAME val $M/val.de $M/val.en
evaluate $NAME test_2016_flickr $M/test_2016_flickr.de $M/test_2016_flickr.en
