"""Results quoted from outside this project, each with its public source: the report sets ours beside them
for context (``tables.context_table``) and never compares them as if they were ours.

The ``source`` of each entry is the text the report's context table shows; the comments name where each
number was published.
"""

from __future__ import annotations

# The course assignment's data: 1,600 rain and 1,600 snow training pairs of 256 x 256 px, 100 test images
# without answers, scored by PSNR on the course's leaderboard. Source: the assignment's description.
COURSE_DATA = {"pairs": 3200, "side": 256, "test_images": 100}

# The course assignment's seed solution: its report's loss study (full PromptIR, 25 epochs of whole images,
# batch 1, AdamW with a cosine schedule, mixed precision, random horizontal and vertical flips). Its 29.74 dB
# (MSE) is its public-leaderboard score; the report does not say where its L1 and L1+SSIM figures were
# measured. Source: the seed solution's report.
SEED_RESULTS = {"l1": 28.88, "l1_ssim": 29.34, "mse": 29.74}
SEED_SETTING = {
    "scored on": "course public leaderboard (MSE; the others: not stated)",
    "model": "full PromptIR (35.4 M)",
    "hardware": "GPU",
    "source": "the assignment's seed solution (its report)",
}

# The best public solution of the assignment on the course's public leaderboard: stock PromptIR, L1 + 0.1 x
# Sobel edge loss, 128 px crops, 150 epochs, 8x flip/rotate self-ensemble at test time.
# Source: the public leaderboard's solutions, as their reports and repositories describe them.
PUBLIC_BEST = {
    "psnr": 32.95,
    "scored on": "course public leaderboard",
    "model": "full PromptIR (35.4 M)",
    "hardware": "GPU",
    "source": "best public solution of the assignment",
}

# PromptIR's Rain100L test PSNR, trained on deraining alone, and all-in-one on three tasks (rain, noise,
# haze). Source: the PromptIR paper (Potlapalli et al., NeurIPS 2023, arXiv:2306.13090), as tabulated in
# later papers.
PROMPTIR_PAPER = {
    "single-task": {"psnr": 37.04, "scored on": "Rain100L test set", "model": "full PromptIR (35.4 M)",
                    "hardware": "GPU", "source": "PromptIR paper, single-task deraining"},
    "all-in-one": {"psnr": 36.37, "scored on": "Rain100L test set", "model": "full PromptIR (35.4 M)",
                   "hardware": "GPU", "source": "PromptIR paper, all-in-one (rain, noise, haze)"},
}  # fmt: skip

# Where solutions of this assignment published both, their public-leaderboard scores ran about this much above
# their private (final) ones (dB). Source: the public solutions' reports that give both.
PUBLIC_OVER_PRIVATE_DB = (0.4, 0.5)
