"""The one place that knows how Ultralytics' internals differ between releases.

Everything is decided by probing behaviour (the shape of ``preds``, whether loss items are a dict, whether the total
is a vector, which attributes a criterion has), not by comparing version strings; the version is read only to refuse
releases outside the supported range. One module per area; every name is re-exported here, so the rest of pairhook
writes ``compat.<name>`` and never imports Ultralytics' internals itself.
"""

from pairhook.compat.distributed import all_reduce_sum, world_size
from pairhook.compat.launch import (
                                    TrainerRoute,
                                    callbacks_reach_workers,
                                    launches_workers,
                                    route_trainer,
                                    unroute_trainer,
)
from pairhook.compat.release import (
                                    MAX_MAJOR_MINOR,
                                    MIN_VERSION,
                                    OFFLINE_VALUE,
                                    SUPPORTED,
                                    check_supported,
                                    font_dirs,
                                    ultralytics_version,
)
from pairhook.compat.training import (
                                    add_loss_names,
                                    add_terms,
                                    align_loss_names,
                                    assigner_slots,
                                    check_task,
                                    class_logits,
                                    criterion_of,
                                    ema_model,
                                    loaders,
                                    num_classes,
                                    refresh_loader,
                                    remove_loss_names,
                                    shared_scores,
                                    unwrap,
)
from pairhook.compat.tuner import (
                                    TrialSubprocess,
                                    drop_broken_ray_callback,
                                    drop_ray_callback,
                                    ignored_arguments,
                                    int_keys,
                                    ray_callback_problem,
                                    redirect_trials,
                                    run_ray_tune_problem,
                                    train_defaults,
                                    trial_train_args,
)
from pairhook.compat.validation import (
                                    add_metric_keys,
                                    default_validator,
                                    detections,
                                    hook_validator,
                                    unhook_validator,
                                    val_predictions,
                                    val_results,
                                    val_targets,
)

__all__ = [
    "MAX_MAJOR_MINOR", "MIN_VERSION", "OFFLINE_VALUE", "SUPPORTED", "TrainerRoute", "TrialSubprocess",
    "add_loss_names", "add_metric_keys", "add_terms", "align_loss_names", "all_reduce_sum", "assigner_slots",
    "callbacks_reach_workers", "check_supported", "check_task", "class_logits", "criterion_of", "default_validator",
    "detections", "drop_broken_ray_callback", "drop_ray_callback", "ema_model", "font_dirs", "hook_validator",
    "ignored_arguments", "int_keys", "launches_workers", "loaders", "num_classes", "ray_callback_problem",
    "redirect_trials", "refresh_loader", "remove_loss_names", "route_trainer", "run_ray_tune_problem", "shared_scores",
    "train_defaults", "trial_train_args", "ultralytics_version", "unhook_validator", "unroute_trainer", "unwrap",
    "val_predictions", "val_results", "val_targets", "world_size",
]
