#!/usr/bin/env bash
# Multi30k en -> de, transformer: SentencePiece BPE 8k + training (recipes/multi30k/transformer.yaml),
# averaging of the last checkpoints, beam 5 on val and test_2016_flickr, sacreBLEU + chrF.
# Usage (from the repository root): recipes/multi30k/en_de_transformer.sh   (env: see recipes/common.sh)
source "$(dirname "$0")/../common.sh"
M=$DATA/multi30k
NAME=multi30k_en_de_transformer
train $NAME recipes/multi30k/transformer.yaml data.train=$M/train data.dev=$M/val \
  data.src_suffix=en data.tgt_suffix=de
average $NAME
evaluate $NAME val $M/val.en $M/val.de
evaluate $NAME test_2016_flickr $M/test_2016_flickr.en $M/test_2016_flickr.de
