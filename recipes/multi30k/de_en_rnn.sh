#!/usr/bin/env bash
# Multi30k de -> en, rnn: SentencePiece BPE 8k + training (recipes/multi30k/rnn.yaml),
# averaging of the last checkpoints, beam 5 on val and test_2016_flickr, sacreBLEU + chrF.
# Usage (from the repository root): recipes/multi30k/de_en_rnn.sh   (env: see recipes/common.sh)
source "$(dirname "$0")/../common.sh"
multi30k de en rnn
