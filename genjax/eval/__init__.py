"""Evaluation from checkpoints and from sample files: quality metrics, each result stamped with its protocol.

One module per concern:
  run           evaluate_run(workdir) -> workdir/eval.json and eval/*.png; evaluate_samples(path, dataset) for a
                uint8 [N, H, W, C] array of images from anywhere; a population's members and their mean and std.
  block         what an evaluation block is (NAME, applies(family), score(run, settings) -> Scored) and Settings.
  generator     samples in the feature space of the project's classifier (FID, KID, precision, recall, density,
                coverage, classes), and Inception FID and KID when pytorch-fid's weights are given.
  conditional   the label accuracy of `sample_class`.
  likelihood    neg_elbo and an importance-weighted nll on a binarized test set.
  reconstruction  means over the test split of the family's per-example eval_step.
  restore       Run, load_run, restore_target: a checkpoint restored onto this process's devices.
  provenance    environment() and cpu_name(): what produced a result; write_json, write_text: whole files or none.
  leaderboard   every run under a root, scored (or its fresh eval.json reused) and tabled in markdown.
  during        train.eval_every: a cheap score in the training process, and the best checkpoint by it.

Which blocks apply is what the family's `blocks` name (genjax.models.family). Import the modules by name (`from
genjax.eval import run as evaluation`), never `from genjax import eval`, which would shadow the builtin.
"""
