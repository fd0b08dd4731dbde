"""`bench evade` on a few cheap points (CI never builds the full bench): the weight
transformations, a 2-step wash, an audit row, and the summary the targets are read from."""
import json
from pathlib import Path

import pytest
import torch

from attribcheck.errors import InputError
from attribcheck.lab.bench import evade
from attribcheck.lab.evade import weights as w
from attribcheck.lab.world.layout import is_done

WORLD = Path("fixtures/world-partial")  # committed: the test never skips


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    return evade.Plan(WORLD, tmp_path_factory.mktemp("evade"))


def unet(folder) -> dict:
    return w.read(Path(folder) / w.UNET)


def test_round_trips_and_merges_do_what_they_say():
    inf = unet(WORLD / "emoji-web/models/infringer-rho1.0-s0")
    inn = unet(WORLD / "emoji-web/models/innocent-s1")
    # the UNet is stored in fp16: an fp16 round trip changes nothing, bf16 does
    assert all(torch.equal(inf[k], v) for k, v in w.cast_round_trip(inf, "float16").items())
    assert any(not torch.equal(inf[k], v) for k, v in w.cast_round_trip(inf, "bfloat16").items())
    for per_channel in (True, False):
        q = w.int8_round_trip(inf, per_channel)
        for k, v in inf.items():
            if v.ndim < 2:
                assert torch.equal(q[k], v)
                continue
            dims = tuple(range(1, v.ndim)) if per_channel else tuple(range(v.ndim))
            step = v.float().abs().amax(dim=dims, keepdim=True) / 127
            # within half a quantization step (and fp16's rounding of the result)
            assert torch.all((q[k].float() - v.float()).abs() <= step / 2 + 1e-3 * v.float().abs() + 1e-6)
            # 255 levels at most per scale
            assert len(torch.unique(torch.round(q[k].float() / step.clamp_min(1e-12)))) <= 255
    m = w.average(inf, inn, 0.25)
    k = next(k for k, v in inf.items() if v.ndim >= 2)
    assert torch.allclose(m[k].float(), 0.75 * inf[k].float() + 0.25 * inn[k].float(), atol=2e-3)
    assert all(torch.equal(w.average(inf, inn, 0.0)[k], v) for k, v in inf.items())


def test_a_merge_with_another_architecture_is_one_line_naming_the_file(tmp_path):
    src = WORLD / "emoji-web/models/innocent-s1"
    other = w.clone(src, tmp_path / "other")
    t = unet(other)
    k = next(iter(t))
    t[k] = torch.zeros(3, 3, dtype=t[k].dtype)
    (other / w.UNET).unlink()
    w.write(t, other / w.UNET)
    with pytest.raises(InputError) as e:
        w.transform(WORLD / "emoji-web/models/infringer-rho1.0-s0", tmp_path / "out",
                    lambda a, b: w.average(a, b, 0.5), partner=other)
    assert "diffusion_pytorch_model.safetensors" in str(e.value) and "\n" not in str(e.value)


def test_a_two_step_wash_saves_each_checkpoint_from_one_run(plan, monkeypatch):
    monkeypatch.setattr(evade, "WASH_PAIRS", 8)
    pts = plan.wash_points(evade.INNOCENT, 1.0, steps=(1, 2))
    for p in pts:
        p.folder = plan.root / p.name.replace("/", "__")
    evade.build_point(pts[0], pts)
    assert all(is_done(p.folder) for p in pts)
    src = unet(plan.model(evade.INNOCENT))
    one, two = unet(pts[0].folder), unet(pts[1].folder)
    assert any(not torch.equal(src[k], v) for k, v in one.items())
    assert any(not torch.equal(one[k], v) for k, v in two.items())
    assert not Path(str(pts[1].folder) + ".final").exists()


def test_cheap_points_audited_as_a_suite_audits_a_suspect(plan, tmp_path):
    from attribcheck.audit.auditor import Auditor
    from attribcheck.keys.keyset import KeySet

    ks = KeySet.load(WORLD / "emoji-web/keys/detection").head(5)
    auditor = Auditor(ks, alpha=0.01)
    pts = {p.name: p for p in plan.points()}
    rows = []
    for name in ("infringer-rho1.0-s0/none", "infringer-rho1.0-s0/cast-dtypebfloat16",
                 "infringer-rho1.0-s0/merge-partnerinnocent-s1-share0.5"):
        p = pts[name]
        evade.build_point(p, [p])
        row = evade.audit_point(p, auditor, None, p.folder or plan.model(p.subject))
        assert row["instance"]["k"] == 5 and 0 <= row["instance"]["rate_bound"] <= 1
        rows.append({"subject": p.subject, "expect": p.expect, "evasion": p.evasion, "strength": p.strength, **row})
    # a bf16 round trip keeps every key's match (the answers barely move)
    assert rows[1]["instance"]["matches"] == rows[0]["instance"]["matches"]
    # the audit row is cached beside the model and reused
    cached = json.loads((pts[rows[1]["subject"] + "/cast-dtypebfloat16"].folder / "audit.json").read_text())
    assert cached["instance"] == rows[1]["instance"]


def test_the_summary_lists_cleared_infringers_attributed_innocents_and_wash_limits():
    def row(subject, evasion, strength, inst, stat):
        return {"subject": subject, "expect": evade.expect_of(subject), "evasion": evasion, "strength": strength,
                "instance": {"verdict": inst}, "statistical": {"verdict": stat}}

    rows = [row("infringer-a", "wash", {"lr": 0.002, "steps": 100}, "attributed", "attributed"),
            row("infringer-a", "wash", {"lr": 0.002, "steps": 500}, "inconclusive", "attributed"),
            row("infringer-a", "wash", {"lr": 0.002, "steps": 2000}, "clean", "inconclusive"),
            row("innocent-b", "merge", {"share": 0.5}, "clean", "attributed")]
    s = evade.summarise(rows)
    assert s["wash_limit"]["infringer-a lr=0.002"]["instance"] == 100
    assert s["wash_limit"]["infringer-a lr=0.002"]["statistical"] == 500
    assert s["infringers_clean"] == ["infringer-a/wash {'lr': 0.002, 'steps': 2000} (instance)"]
    assert s["innocents_attributed"] == ["innocent-b/merge {'share': 0.5} (statistical)"]
    assert s["statistical_at_least_instance"] is True
    rows.append(row("infringer-a", "none", {}, "attributed", "attributed"))
    s = evade.summarise(rows)
    assert s["verdict_kept"]["infringer-a/wash {'lr': 0.002, 'steps': 500}"] == {"instance": False, "statistical": True}
    rows[1]["statistical"]["verdict"] = "inconclusive"  # the statistical level gives up before the instance one
    rows[0]["statistical"]["verdict"] = "inconclusive"
    assert evade.summarise(rows)["statistical_at_least_instance"] is False


def test_a_lora_point_changes_the_weights_by_low_rank_adapters_only(plan):
    """Every UNet layer adapted (the LoCon-style points): after two steps, saved at each, each
    adapted 2-D weight moved by a matrix of rank <= r and the layers LoRA leaves alone (norms,
    biases) are the base's; the output convolution, unadapted in the first LoRA points, moved."""
    from attribcheck.lab.evade.train import UNET_ALL, lora
    from attribcheck.lab.train.mix import mix

    real = plan.splits()["real"]
    cfg = plan.builder.finetune_config(2, 5e-3, 0)
    outs = {1: plan.root / "lora-1", 2: plan.root / "lora-2"}
    lora(plan.model("base"), mix(real, real, 8, 0.0, 0), cfg, outs, rank=2, done=lambda p: (p / ".done").touch(),
         unet_targets=UNET_ALL)
    assert all(is_done(p) for p in outs.values())
    base, one, two = unet(plan.model("base")), unet(outs[1]), unet(outs[2])
    assert any(not torch.equal(one[k], v) for k, v in two.items())  # the run went on after the first save
    moved = {k for k, v in two.items() if not torch.equal(base[k], v)}
    assert "conv_out.weight" in moved
    for k in base:
        if k.endswith(".bias") or "norm" in k:
            assert k not in moved, k
        elif k in moved:
            delta = (two[k].float() - base[k].float()).flatten(1)
            # fp16 storage rounds the merged weight (by up to 2^-11 of each entry): rank counted
            # above that rounding's largest possible singular value
            noise = torch.linalg.norm(two[k].float() * 2 ** -11)
            assert int((torch.linalg.svdvals(delta) > noise).sum()) <= 2, k
