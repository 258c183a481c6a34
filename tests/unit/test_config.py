from __future__ import annotations

import pytest

from decom import ConfigError, DecomConfig
from decom._units import parse_duration


def test_defaults_match_emr():
    c = DecomConfig.resolve({})
    assert (c.exclude_enabled, c.cleanup_enabled, c.exempt_enabled) == (True, True, True)
    assert c.exclude_timeout == 3600 and c.deadline_threshold == 20 and c.poll_interval == 1
    assert c.errors == ()


@pytest.mark.parametrize("text,seconds", [("20s", 20), ("500ms", 0.5), ("5min", 300), ("1h", 3600),
                                          ("2", 2), (3, 3), ("1.5m", 90), ("1d", 86400)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "-1s", "1 hour", True, ""])
def test_bad_durations_say_how_to_fix(bad):
    with pytest.raises(ConfigError, match="duration|negative"):
        parse_duration(bad, "spark.decom.poll.interval")


def test_emr_keys_from_spark_conf():
    c = DecomConfig.resolve({
        "spark.blacklist.decommissioning.enabled": "false",
        "spark.blacklist.decommissioning.timeout": "30min",
        "spark.resourceManager.cleanupExpiredHost": "False",
        "spark.stage.attempt.ignoreOnDecommissionFetchFailure": "0",
        "spark.decommissioning.timeout.threshold": "45s",
        "spark.decom.yarn.rm.addresses": "http://rm1:8088, http://rm2:8088",
        "spark.executor.memory": "4g",  # not ours: ignored, no error
    })
    assert not c.exclude_enabled and not c.cleanup_enabled and not c.exempt_enabled
    assert c.exclude_timeout == 1800 and c.deadline_threshold == 45
    assert c.rm_addresses == ("http://rm1:8088", "http://rm2:8088")
    assert c.errors == ()


def test_precedence_options_over_spark_conf_over_yaml(tmp_path):
    f = tmp_path / "decom.yaml"
    f.write_text("spark.decom.poll.interval: 7s\n"
                 "spark:\n  blacklist:\n    decommissioning:\n      timeout: 2h\n"
                 "spark.decommissioning.timeout.threshold: 10s\n")
    conf = {"spark.decom.config": str(f), "spark.decom.poll.interval": "3s"}
    c = DecomConfig.resolve(conf, {"deadline_threshold": "5s"})
    assert c.poll_interval == 3, "Spark conf wins over YAML"
    assert c.exclude_timeout == 7200, "YAML (nested form) wins over defaults"
    assert c.deadline_threshold == 5, "enable() options win over everything"


def test_bad_values_are_reported_and_keep_defaults():
    c = DecomConfig.resolve({"spark.decom.poll.interval": "often",
                             "spark.blacklist.decommissioning.enabled": "maybe",
                             "spark.decom.pol.interval": "2s"})
    assert c.poll_interval == 1 and c.exclude_enabled is True
    text = " | ".join(c.errors)
    assert "spark.decom.poll.interval='often' is not a duration" in text
    assert "is not a boolean" in text
    assert "did you mean 'spark.decom.poll.interval'" in text


def test_strict_raises_the_first_problem():
    with pytest.raises(ConfigError, match="did you mean 'exclude_timeout'"):
        DecomConfig.resolve({}, {"exclude_timout": "1h"}, strict=True)


@pytest.mark.parametrize("content,fragment", [("[unclosed", "not valid YAML"),
                                              ("- a\n- b\n", "must be a mapping")])
def test_unreadable_yaml(tmp_path, content, fragment):
    f = tmp_path / "d.yaml"
    f.write_text(content)
    c = DecomConfig.resolve({"spark.decom.config": str(f)})
    assert any(fragment in e for e in c.errors)


def test_missing_yaml_file(tmp_path):
    c = DecomConfig.resolve({"spark.decom.config": str(tmp_path / "nope.yaml")})
    assert any("cannot read" in e for e in c.errors)
