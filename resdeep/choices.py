"""Every value a user can type for a choice, once. The schema, the models, training, `cam` and the
image pipeline all read these; torch-free, so help and config checks stay quick."""

from __future__ import annotations

# Networks (resdeep.models)
ARCHITECTURES = ("resnet", "plain", "preact")
BLOCKS = ("basic", "bottleneck")  # bottleneck: pre-activation units only
SHORTCUTS = ("A", "B")  # A: parameter-free (subsample, zero-pad); B: 1x1 projection
# Where option A's zero channels go: after the identity channels (fb.resnet.torch, the paper's
# authors' Torch code) or half before and half after (akamaster/pytorch_resnet_cifar10).
SHORTCUT_PADS = ("after", "both")
INITS = ("kaiming", "xavier", "orthogonal", "default")
NORMS = ("batch", "none")
# Residual nets that train without batch norm (resdeep.models.normfree): Fixup (Zhang et al.
# 2019), SkipInit (De & Smith 2020) and ReZero (Bachlechner et al. 2020); "none": neither.
RESIDUAL_INITS = ("none", "fixup", "skipinit", "rezero")
DROPOUT_PLACES = ("head", "blocks")

# Training (resdeep.train)
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "multistep", "constant")
WARMUPS = ("constant", "linear")
PRECISIONS = ("32", "bf16", "16")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
CHANNELS_LAST = ("auto", True, False)
PROGRESS = ("auto", "bar", "lines")
ON_NAN = ("stop", "skip")
DEVICES = ("auto", "cpu", "cuda")  # and cuda:N for the N-th GPU

# Class activation maps (resdeep.cam) and the square an image becomes (resdeep.images): its
# centre square (a landscape photo is not squashed), the whole image squashed, or padded.
CAM_METHODS = ("cam", "gradcam", "gradcam++", "scorecam")
CROPS = ("center", "none", "pad")
# cam --sanity: weights randomised from the classifier down, or one part at a time.
CAM_RANDOMIZATIONS = ("cascading", "independent")

# The tools that read a trained run (uncertainty, lesion): the split of its data they evaluate.
EVAL_SPLITS = ("test", "val")

# `resdeep signal`: what a net is probed with, the configured data set's images or N(0, 1) noise.
SIGNAL_INPUTS = ("data", "normal")

# `resdeep uncertainty --shift`: the corruptions of the test split (resdeep.uncertainty.shift).
SHIFT_KINDS = ("rotation", "gaussian_noise", "gaussian_blur", "contrast", "translation")
# `resdeep uncertainty --laplace-prior`: how the last-layer Laplace's prior precision is chosen (or
# a positive number).
LAPLACE_PRIORS = ("marglik", "val-nll")
