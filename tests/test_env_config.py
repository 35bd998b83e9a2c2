"""Config: Table I defaults, YAML/TOML loading, --set overrides, clear refusals."""

import pytest

from common.errors import UserInputError
from optimizer.config import EnvConfig, EvaluateConfig, build_config, from_dict, to_dict


def test_defaults_are_table_one():
    cfg = EnvConfig()
    assert (cfg.num_servers, cfg.num_users, cfg.services_per_model, cfg.zipf_s) == (10, 50, 5, 0.8)
    assert cfg.capacity.user_flops == (10e9, 100e9) and cfg.capacity.server_flops == (500e9, 2000e9)
    assert cfg.capacity.server_storage_bytes == (3e9, 5e9) and cfg.capacity.user_storage_bytes == (1e9, 2e9)
    assert cfg.capacity.server_bandwidth_hz == (50e6, 100e6)
    assert cfg.capacity.energy_j_per_flop == (1e-11, 1e-9)
    assert cfg.capacity.privacy_preference == (0.2, 0.8) and cfg.capacity.cloud_rate_bps == (200e6, 500e6)
    assert cfg.channel.server_power_dbm == (30, 43) and cfg.channel.user_power_dbm == (20, 30)
    assert (cfg.channel.path_loss_exponent, cfg.channel.shadowing_std_db, cfg.channel.path_loss_ref_db) == (3.5, 8, 30)
    assert (cfg.channel.noise_figure_db, cfg.channel.carrier_hz) == (6, 3.5e9)
    assert (cfg.cost.alpha1, cfg.cost.alpha2, cfg.cost.mu1, cfg.cost.mu2) == (0.31, 1.88, 5, 5)
    assert (cfg.cost.delay_limit_s, cfg.delta_t, cfg.area_m, cfg.input_batch) == (3, 10, 1000, (1, 16))
    assert cfg.compute_unit == "flops"


def test_yaml_scientific_notation_and_nested_sections(tmp_path):
    path = tmp_path / "exp.yaml"
    # PyYAML reads 1e-11 (no dot) as the string "1e-11"; it must still become a float
    path.write_text("env:\n  num_users: 80\n  capacity:\n    energy_j_per_flop: [1e-11, 1e-9]\n"
                    "  cost:\n    mu1: 2\nepisodes: 3\n")
    cfg = build_config(EvaluateConfig, path)
    assert cfg.env.num_users == 80 and cfg.episodes == 3
    assert cfg.env.capacity.energy_j_per_flop == (1e-11, 1e-9)
    assert isinstance(cfg.env.capacity.energy_j_per_flop[0], float)
    assert cfg.env.cost.mu1 == 2.0 and cfg.env.cost.mu2 == 5.0        # untouched keys keep defaults


def test_toml_and_overrides_win_over_file(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text("[env]\nnum_users = 80\n[env.channel]\nshadowing_std_db = 4.0\n")
    cfg = build_config(EvaluateConfig, path, ["env.num_users=20", "env.compute_unit=macs",
                                              "env.user_cache=false", "env.capacity.server_flops=[1e12, 2e12]"])
    assert cfg.env.num_users == 20 and cfg.env.channel.shadowing_std_db == 4.0
    assert cfg.env.compute_unit == "macs" and cfg.env.user_cache is False
    assert cfg.env.capacity.server_flops == (1e12, 2e12)
    assert from_dict(EvaluateConfig, to_dict(cfg)) == cfg                 # round trip


@pytest.mark.parametrize("override, message", [
    ("env.num_userz=3", "env.num_userz: unknown key"),
    ("env.capacity.server_flops=[-1, 2e12]", "env.capacity.server_flops"),
    ("env.capacity.server_storage_bytes=[5e9, 3e9]", "low <= high"),
    ("env.num_users=2.5", "env.num_users: must be an integer"),
    ("env.num_users=0", "env.num_users: must be >= 1"),
    ("env.services_per_model=0", "env.services_per_model"),
    ("env.compute_unit=gflops", "must be one of ['flops', 'macs']"),
    ("env.cost.mu1=abc", "env.cost.mu1: must be a number"),
    ("env.cost.delay_limit_s=-3", "env.cost.delay_limit_s: must be > 0"),
    ("env.capacity.privacy_preference=[0.2, 1.5]", "Pre_k must lie in [0, 1]"),
    ("env.user_cache=maybe", "must be true or false"),
    ("env.cost=5", "must be a mapping"),
    ("num_users", "expected key=value"),
])
def test_bad_values_are_refused_clearly(override, message):
    with pytest.raises(UserInputError) as err:
        build_config(EvaluateConfig, None, [override])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_config_files(tmp_path):
    with pytest.raises(UserInputError, match="must end in .yaml"):
        (tmp_path / "x.ini").write_text("a=1")
        build_config(EvaluateConfig, tmp_path / "x.ini")
    (tmp_path / "bad.yaml").write_text("env: [1, 2")
    with pytest.raises(UserInputError, match="bad.yaml: cannot parse"):
        build_config(EvaluateConfig, tmp_path / "bad.yaml")
    with pytest.raises(UserInputError, match="cannot read config"):
        build_config(EvaluateConfig, tmp_path / "missing.yaml")


def test_binary_config_file_and_a_value_used_as_section(tmp_path):
    (tmp_path / "blob.toml").write_bytes(b"\xff\xfe")
    with pytest.raises(UserInputError, match="blob.toml: cannot read config \\(not UTF-8 text\\)"):
        build_config(EvaluateConfig, tmp_path / "blob.toml")
    (tmp_path / "flat.toml").write_text("env = 3\n")  # the file, not the --set, is at fault: say which key
    with pytest.raises(UserInputError, match="config env: is a value \\(3\\), not a section"):
        build_config(EvaluateConfig, tmp_path / "flat.toml", ["env.num_users=4"])


def test_a_failure_may_never_pay_better_than_a_slow_success():
    # R^fail must lie below -μ3 (τ_fail − τ̄) = -10 · (30 − 3) = -270, else timing out beats a 25 s success.
    with pytest.raises(UserInputError, match=r"reward_fail: must be <= -mu3 \* \(tau_fail_s - delay_limit_s\) = -270"):
        from_dict(EnvConfig, {"reward": {"reward_fail": -200.0}})
    assert from_dict(EnvConfig, {"reward": {"reward_fail": -270.0}}).reward.reward_fail == -270.0
