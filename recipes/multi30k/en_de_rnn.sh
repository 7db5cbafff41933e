#!/usr/bin/env bash
# Multi30k en -> de, rnn: SentencePiece BPE 8k + training (recipes/multi30k/rnn.yaml),
# averaging of the last checkpoints, beam 5 on val and test_2016_flickr, sacreBLEU + chrF.
# Usage (from the repository root): recipes/multi30k/en_de_rnn.sh   (env: see recipes/common.sh)
source "$(dirname "$0")/../common.sh"
multi30k en de rnn
