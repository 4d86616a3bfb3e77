# Sensor demo on the real UCI robot-execution-failure F/T episodes: the generated insertion
# episodes of insertion_sensor_tiny.py (rendered images, GENERATED OCT A-scans from
# projects/sensor_vla/synthetic.py), with the force channel taken from the Fz readings of the
# 463 UCI episodes (data/force_torque/uci_robot_failures, read by
# projects/sensor_vla/force_torque.py) instead of the screw-driving trace. Concat fusion beside
# fusion='none', one table on the held-out episodes. Data (tools/install.sh makes it):
#   python tools/data_converter/make_insertion_episodes.py --force-source uci \
#       --out-dir data/sensor_vla/insertion_uci
#   python tools/analysis_tools/compute_action_stats.py data/sensor_vla/insertion_uci/train.json \
#       --out data/sensor_vla/insertion_uci/action_stats.json
_base_ = ['./insertion_sensor_tiny.py']

data_root = 'data/sensor_vla/insertion_uci/'
action_stats = data_root + 'action_stats.json'
model = dict(strategies=('concat', 'none'),
             policy=dict(action_normalizer=dict(stats=action_stats)))
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(stats=action_stats)
test_evaluator = val_evaluator
