"""zoo_select.rank against the binary, and the Python-only ways in (objects, names)."""

import json
import math
import os
import signal

import pytest
import torch

import zoo_select
from conftest import DEMO, IMAGES, cli


def scores(report):
    return {(r["model"], r["layer"], m): v for r in report["results"] for m, v in r["scores"].items()}


def test_the_demo_config_gives_the_clis_scores(tmp_path):
    cli("--config", DEMO, "-o", tmp_path / "cli", "--no-cache", "-q")
    want = json.loads((tmp_path / "cli" / "report.json").read_text())
    ranking = zoo_select.rank(DEMO, output=tmp_path / "py", no_cache=True, progress=False)
    got = ranking.report
    assert scores(got).keys() == scores(want).keys()
    for key, value in scores(want).items():
        assert math.isclose(scores(got)[key], value, rel_tol=1e-9, abs_tol=1e-12), key
    assert got["recommendation"]["text"] == want["recommendation"]["text"]
    table = ranking.table
    assert list(table.columns[:6]) == ["model", "layer", "dim", "pretrained", "params_after", "n"]
    assert len(table) == len(want["results"])
    first = want["results"][0]
    row = table[(table.model == first["model"]) & (table.layer == first["layer"])].iloc[0]
    assert row["transrate"] == first["scores"]["transrate"]
    assert row["dim"] == first["dim"]
    # The written config repeats the run with the CLI.
    again = cli("--config", tmp_path / "py" / "config.yaml", "-o", tmp_path / "again", "-q")
    assert again.stdout.strip() == got["recommendation"]["text"].strip()
    # The cache is the CLI's: a run of the config as it is leaves statistics that the package,
    # given the same config with keywords, reads back.
    cli("--config", DEMO, "-o", tmp_path / "warm", "-q")
    cached = zoo_select.rank(DEMO, output=tmp_path / "cached", progress=False)
    assert len(cached.report["statistics"]["reused"]) == len(want["results"])
    assert cached.report["dataset"]["root"] == want["dataset"]["root"]
    assert cached.recommendation.text == again_report(tmp_path)["recommendation"]["text"]


def again_report(tmp_path):
    return json.loads((tmp_path / "again" / "report.json").read_text())


def test_an_in_memory_module_and_a_name_are_ranked(objects_run):
    ranking, module, out = objects_run
    table = ranking.table
    assert sorted(table.model.unique()) == ["resnet18_random", "resnet_random"]
    assert list(table[table.model == "resnet_random"].layer) == ["relu", "layer1", "layer2", "layer3", "layer4"]
    assert list(table[table.model == "resnet_random"].dim) == [64, 64, 128, 256, 512]
    assert (table.pretrained == False).all()  # noqa: E712  random=True marks both
    assert (table.n == 120).all()
    assert table.transrate.notna().all() and table.knn.between(0, 1).all()
    assert (out / "models" / "resnet18_random.yaml").read_text().count("torchvision:resnet18") == 1
    # A new crop keeps the library's ratio (224 of 256): 64 of 73, for the name and the object.
    for name in ("resnet18_random", "resnet_random"):
        assert "  size: 64\n  resize: 73\n" in (out / "models" / f"{name}.yaml").read_text()
    # Exporting left the module as it was handed over.
    assert module.training
    assert ranking.recommendation.model in ("resnet18_random", "resnet_random")


def test_cut_keeps_exactly_the_layers_up_to_the_cut(objects_run):
    from zoo_select.cut import cut

    _, module, _ = objects_run
    body = cut(module.eval(), "layer3")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        y = module.maxpool(module.relu(module.bn1(module.conv1(x))))
        want = module.layer3(module.layer2(module.layer1(y)))
        assert torch.equal(body(x), want)
    assert not any(n.startswith(("layer4", "fc")) for n, _ in body.named_parameters())


def test_ranking_cut_uses_the_recommended_layer(objects_run):
    ranking, module, _ = objects_run
    body = ranking.cut("resnet_random")
    layer = ranking.report["layer_cuts"]["resnet_random"]["layer"]
    dim = ranking.table.set_index(["model", "layer"]).loc[("resnet_random", layer), "dim"]
    assert body(torch.zeros(1, 3, 64, 64)).shape[1] == dim


def test_cut_refuses_what_was_not_handed_over_as_a_module(objects_run):
    import torchvision

    ranking, _, _ = objects_run
    with pytest.raises(ValueError, match="was not handed to rank\\(\\) as an nn.Module"):
        ranking.cut("resnet18_random")
    with pytest.raises(ValueError, match="this module was not handed to rank"):
        ranking.cut(torchvision.models.resnet18())


def test_plot_is_a_figure_with_a_panel_per_model(objects_run):
    import matplotlib.figure

    ranking, _, _ = objects_run
    fig = ranking.plot()
    assert isinstance(fig, matplotlib.figure.Figure)
    titles = [a.get_title() for a in fig.axes if a.get_visible()]
    assert titles == ["resnet_random (random)", "resnet18_random (random)"]


def test_a_bad_config_gives_the_clis_error_text(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text(f"dataset: {{root: {IMAGES}}}\nzoo: {{dir: {DEMO.parent.parent / 'zoo'}}}\nmetrics: [transrat]\n")
    done = cli("--config", config, check=False)
    assert done.returncode == 1
    cli_text = done.stderr.strip().removeprefix("error: ")
    assert "transrat" in cli_text
    with pytest.raises(ValueError) as err:
        zoo_select.rank(config, progress=False)
    assert str(err.value) == cli_text


def test_a_bad_keyword_gives_the_same_sentence(tmp_path):
    with pytest.raises(ValueError, match=r"unknown metric `transrat`|`transrat`"):
        zoo_select.rank(images=IMAGES, models=[str(DEMO.parent.parent / "zoo" / "resnet18_random.yaml")],
                        metrics=["transrat"], output=tmp_path, progress=False)
    with pytest.raises(TypeError, match="cannot use a int"):
        zoo_select.rank(images=IMAGES, models=[42], output=tmp_path, progress=False)
    with pytest.raises(ValueError, match="names no model"):
        zoo_select.rank(images=IMAGES, models=["torchvision:"], output=tmp_path, progress=False)
    zoo = DEMO.parent.parent / "zoo"
    with pytest.raises(ValueError, match="random=True builds library names"):
        zoo_select.rank(images=IMAGES, models=[str(zoo / "resnet18_random.yaml")], random=True, output=tmp_path)
    bare = tmp_path / "bare.pt"
    bare.write_bytes((zoo / "resnet18_random.pt").read_bytes())
    with pytest.raises(ValueError, match="has no manifest beside it: give input_size= and layers="):
        zoo_select.rank(images=IMAGES, models=[bare], output=tmp_path / "out", progress=False)
    with pytest.raises(FileNotFoundError, match="no such file"):
        zoo_select.rank(tmp_path / "missing.yaml")


def test_ctrl_c_checkpoints_and_the_next_call_resumes(tmp_path):
    zoo = DEMO.parent.parent / "zoo" / "resnet18_random.yaml"
    kwargs = dict(images=IMAGES, models=[{"manifest": str(zoo), "input": {"size": 64}}], metrics=["transrate"],
                  batch_size=8, dataset={"max_per_class": 30}, output=tmp_path, no_cache=True)

    def interrupt(total, done):
        if done >= 80:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt, match="call rank again with the same arguments to resume"):
        zoo_select.rank(progress=interrupt, **kwargs)
    resumed = zoo_select.rank(progress=False, **kwargs)
    assert resumed.report["statistics"]["resumed_files"] > 0
    whole = zoo_select.rank(progress=False, **{**kwargs, "output": tmp_path / "whole"})
    for key, value in scores(whole.report).items():
        assert math.isclose(scores(resumed.report)[key], value, rel_tol=1e-9), key
