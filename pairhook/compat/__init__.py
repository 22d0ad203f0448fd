"""The one place that knows how Ultralytics' internals differ between releases.

Everything is decided by probing behaviour (the shape of ``preds``, whether loss items are a dict, whether the total
is a vector, which attributes a criterion has), not by comparing version strings; the version is read only to refuse
releases outside the supported range. One module per area; every name is re-exported here, so the rest of pairhook
writes ``compat.<name>`` and never imports Ultralytics' internals itself.
"""

from pairhook.compat.cli import (
    BARE_FLAGS,
    cfg_defaults,
    check_values,
    merge_equals,
    modes,
    print_default_cfg,
    read_cfg_file,
    settings_command,
    smart_value,
    tasks,
)
from pairhook.compat.distributed import all_reduce_sum, world_size
from pairhook.compat.labels import collapses_classes, label_file_of, label_row_map, row_mapper
from pairhook.compat.launch import (
    TrainerRoute,
    callbacks_reach_workers,
    launches_workers,
    route_trainer,
    unroute_trainer,
)
from pairhook.compat.patches import PATCHES, Patch, is_replaced, replace, replaced, restore
from pairhook.compat.release import (
    MAX_MAJOR_MINOR,
    MIN_VERSION,
    OFFLINE_VALUE,
    SUPPORTED,
    check_supported,
    font_dirs,
    local_fonts,
    ultralytics_version,
)
from pairhook.compat.training import (
    add_epoch_columns,
    add_loss_names,
    add_terms,
    align_loss_names,
    assigner_slots,
    check_task,
    class_gain,
    class_logits,
    criterion_of,
    ema_model,
    head_strides,
    loaders,
    neck_features,
    num_classes,
    refresh_loader,
    remove_epoch_columns,
    remove_loss_names,
    shared_scores,
    unwrap,
)
from pairhook.compat.tuner import (
    TRIAL_MODULES,
    TrialSubprocess,
    drop_broken_ray_callback,
    drop_ray_callback,
    ignored_arguments,
    int_keys,
    ray_callback_problem,
    redirect_trials,
    run_ray_tune_problem,
    training_args,
    trial_train_args,
)
from pairhook.compat.validation import (
    IOU_THRESHOLDS,
    add_metric_keys,
    average_precision,
    default_validator,
    detections,
    hook_validator,
    match_predictions,
    unhook_validator,
    val_predictions,
    val_results,
    val_targets,
)

__all__ = [
    "PATCHES", "Patch", "is_replaced", "replace", "replaced", "restore",
    "BARE_FLAGS", "IOU_THRESHOLDS", "MAX_MAJOR_MINOR", "MIN_VERSION", "OFFLINE_VALUE", "SUPPORTED", "TRIAL_MODULES",
    "TrainerRoute", "TrialSubprocess", "add_epoch_columns", "add_loss_names", "add_metric_keys", "add_terms",
    "align_loss_names", "all_reduce_sum", "assigner_slots", "average_precision", "callbacks_reach_workers",
    "cfg_defaults", "check_supported", "check_task", "check_values", "class_gain", "class_logits",
    "collapses_classes", "criterion_of", "default_validator", "detections", "drop_broken_ray_callback",
    "drop_ray_callback", "ema_model", "font_dirs", "head_strides", "hook_validator", "ignored_arguments", "int_keys",
    "label_file_of", "label_row_map", "launches_workers", "loaders", "local_fonts", "match_predictions",
    "merge_equals", "modes", "neck_features", "num_classes", "print_default_cfg", "ray_callback_problem",
    "read_cfg_file", "redirect_trials", "refresh_loader", "remove_epoch_columns", "remove_loss_names",
    "route_trainer", "row_mapper", "run_ray_tune_problem", "settings_command", "shared_scores", "smart_value",
    "tasks", "training_args", "trial_train_args", "ultralytics_version", "unhook_validator",
    "unroute_trainer", "unwrap", "val_predictions", "val_results", "val_targets", "world_size",
]
