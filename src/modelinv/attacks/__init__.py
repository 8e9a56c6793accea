"""Attacks, one file each, registered by name: `ATTACKS.get("rmle")(**params)(threat, targets, data)`.

The registered attacks never import each other; what they share lives in the modules beside them: `base`
(the interface), `registry`, `goals` (how each goal is measured), `generative` (the white-box GAN attacks),
`blackbox` (the black-box GAN attacks), `lomma`, `attribute` (attribute inference), `feature_inversion`
(rMLE's optimisation), `priors` (total variation, blur) and `text` (the text attacks' inputs).
"""

from modelinv.attacks import (  # noqa: F401  (registration)
    bow_inversion,
    brep_mi,
    canary_exposure,
    extraction,
    fredrikson_attr,
    gmi,
    inverse_attr,
    inverse_net,
    kedmi,
    mi_face,
    mirror_bb,
    name_recovery,
    plg_mi,
    rlb_mi,
    rmle,
    shadow,
    text_attribute,
)
from modelinv.attacks.base import Attack, AttackParams, Reconstruction, Targets
from modelinv.attacks.registry import ATTACKS


def describe_attacks() -> list[dict]:
    """Name, summary, goal, threat model (in words, and as the requirements it is written from) and parameters
    (with defaults) of every attack."""
    rows = []
    for name in ATTACKS.names():
        cls = ATTACKS.get(name)
        params = {k: {"default": f.default, "description": f.description} for k, f in cls.Params.model_fields.items()}
        rows.append(
            {
                **ATTACKS.info(name),
                "goal": cls.goal,
                "threat": cls.threat_summary(),
                "observes": sorted(cls.observes),
                "white_box": sorted(cls.white_box),
                "queries": cls.queries,
                "params": params,
            }
        )
    return rows


__all__ = ["ATTACKS", "Attack", "AttackParams", "Reconstruction", "Targets", "describe_attacks"]
