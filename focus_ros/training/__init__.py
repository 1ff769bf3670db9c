"""Training the embedded default model (ROS-free), split by job: the recipe (:mod:`.recipe`), the model
and its head surgery (:mod:`.model`), the training examples (:mod:`.data`), the losses (:mod:`.losses`),
the trainer with its checkpoints (:mod:`.trainer`), the gates (:mod:`.gates`) and the random-weight
miniatures the tests load (:mod:`.miniatures`).

Imports the runtime (:mod:`focus_ros.core`) and the scenes (:mod:`focus_ros.eval`), never the
evaluation-only renderer :mod:`focus_ros.eval.scenes_eval`; the runtime never imports this package:
it loads a trained model with ``from_pretrained`` alone. Modules load on first use.
"""
