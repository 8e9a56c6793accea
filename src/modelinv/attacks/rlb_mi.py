"""RLB-MI: reinforcement-learning-based black-box model inversion (Han et al., "Reinforcement
Learning-Based Black-Box Model Inversion Attacks", CVPR 2023, sec. 3).

For each class y a soft actor-critic agent (Haarnoja et al., ICML 2018) acts in the public GAN's latent
space. An episode starts from a state s ~ N(0, I); the agent's action a (a tanh-squashed Gaussian in
[-1, 1]^d) moves it to s' = alpha s + (1 - alpha) a, and the reward (Eq. 4-6) reads the target's
probabilities p = T(G(.)):

    r = w_state log p_y(G(s')) + w_action log p_y(G(a)) + w_margin log max(eps, p_y(G(s')) - max_{j != y} p_j(G(s')))

After each episode the agent updates on a replay batch, and a test episode from a fresh random state
scores the image its policy produces; the `per_class` best test images (by p_y) are the result.
Episodes have one step as in the reference (max_step 1), so the soft Bellman target is the reward
itself and SAC's target critics drop out; twin critics, the entropy-regularised actor and the learned
temperature (target entropy -d) are as in SAC. With alpha = 0 (the reference's diversity factor) s' = a,
so one query serves both reward terms.

Defaults are the paper's reward weights (2, 2, 8, eps 1e-7), the reference's agent (two hidden layers
of 256, Adam 5e-4, batch 256, learning from a full batch on) and alpha 0. Departure for CPU: 2,000
episodes per class instead of 40,000, and GMI's WGAN-GP generator on the public digits.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from modelinv.attacks.base import AttackParams
from modelinv.attacks.blackbox import PublicPriorAttack, ask, check_classes, rank_in_class, until_budget
from modelinv.attacks.registry import ATTACKS
from modelinv.gans.wgan_gp import WGANGPConfig
from modelinv.progress import progress_bar
from modelinv.seeding import seeded

LOG_STD_RANGE = (-20.0, 2.0)
"""Bounds of the actor's log standard deviation, as in the reference."""


class RLBMIParams(WGANGPConfig, AttackParams):
    episodes: int = Field(2000, ge=1, description="training episodes per class (paper: 40,000)")
    alpha: float = Field(0.0, ge=0, lt=1, description="diversity factor: s' = alpha s + (1 - alpha) a")
    w_state: float = Field(2.0, ge=0, description="weight of log p_y(G(s')) in the reward")
    w_action: float = Field(2.0, ge=0, description="weight of log p_y(G(a)) in the reward")
    w_margin: float = Field(8.0, ge=0, description="weight of the log confidence margin of G(s') in the reward")
    margin_floor: float = Field(1e-7, gt=0, description="eps: the margin is floored here before the log")
    hidden: int = Field(256, ge=1, description="width of the two hidden layers of actor and critics")
    agent_lr: float = Field(5e-4, gt=0, description="Adam step size of actor, critics and temperature")
    agent_batch: int = Field(256, ge=1, description="replay batch per update; updates start once the buffer holds more")


def mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, outputs))


class SoftActorCritic(nn.Module):
    """A tanh-Gaussian actor, twin Q critics and a learned temperature, for one-step episodes."""

    def __init__(self, dim: int, hidden: int, lr: float, device: torch.device | str = "cpu"):
        """Initialised on the CPU (the same weights on every device), then moved to `device`."""
        super().__init__()
        self.actor = mlp(dim, hidden, 2 * dim)
        self.critics = nn.ModuleList([mlp(2 * dim, hidden, 1) for _ in range(2)])
        self.log_temperature = nn.Parameter(torch.zeros(()))  # cpu: moved with the module just below
        self.to(device)
        self.target_entropy = -float(dim)
        self.optimisers = [torch.optim.Adam(m.parameters(), lr) for m in (self.actor, self.critics)]
        self.optimisers.append(torch.optim.Adam([self.log_temperature], lr))

    def act(self, state: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A sampled action a = tanh(mu + sigma eps) and its log-probability (with the tanh correction)."""
        mu, log_std = self.actor(state).chunk(2, dim=1)
        log_std = log_std.clamp(*LOG_STD_RANGE)
        eps = torch.randn(mu.shape, generator=gen).to(mu.device)  # drawn on the CPU: the same on every device
        action = torch.tanh(mu + log_std.exp() * eps)
        log_prob = (-0.5 * eps**2 - log_std - 0.5 * math.log(2 * math.pi)).sum(1) - torch.log1p(-action.pow(2) + 1e-6).sum(1)
        return action, log_prob

    def q(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.cat([state, action], 1)
        return torch.minimum(*(c(x).squeeze(1) for c in self.critics))

    def update(self, state: torch.Tensor, action: torch.Tensor, reward: torch.Tensor, gen: torch.Generator) -> None:
        """One SAC step: critics regress the reward (one-step target), the actor maximises Q + temperature * entropy,
        the temperature tracks the target entropy."""
        x = torch.cat([state, action], 1)
        critic_loss = sum(0.5 * F.mse_loss(c(x).squeeze(1), reward) for c in self.critics)
        new_action, log_prob = self.act(state, gen)
        temperature = self.log_temperature.exp().detach()
        self.critics.requires_grad_(False)
        actor_loss = (temperature * log_prob - self.q(state, new_action)).mean()
        self.critics.requires_grad_(True)
        temperature_loss = -(self.log_temperature * (log_prob.detach() + self.target_entropy)).mean()
        for optimiser in self.optimisers:
            optimiser.zero_grad()
        (critic_loss + actor_loss + temperature_loss).backward()
        for optimiser in self.optimisers:
            optimiser.step()


@ATTACKS.register("rlb-mi")
class RLBMI(PublicPriorAttack):
    """RLB-MI (Han et al., CVPR 2023): a soft actor-critic agent per class, acting in the public GAN's latent space, rewarded by the target's confidence."""

    observes = frozenset({"probs"})
    Params = RLBMIParams

    def search(self, observer: Any, generator: nn.Module, y: torch.Tensor, gen: torch.Generator, meta: dict[str, Any]) -> torch.Tensor:
        """Train one agent per class (module docstring); the images of a class are its best test states, best first."""
        p = self.params
        classes, which = y.unique(return_inverse=True)
        c, d, keep = len(classes), p.latent_dim, int(rank_in_class(y).max()) + 1
        with seeded(gen):
            agents = [SoftActorCritic(d, p.hidden, p.agent_lr, y.device) for _ in range(c)]
        best_z, best_p = torch.zeros(c, keep, d, device=y.device), torch.full((c, keep), -1.0, device=y.device)
        buffer: list[tuple[torch.Tensor, ...]] = []
        meta["episodes"] = 0

        def confidence(z: torch.Tensor) -> torch.Tensor:
            """Target probabilities of G(z) for latents (c, m, d) of the classes: (c, m, K)."""
            probs = ask(observer, generator, z.flatten(0, 1), "probs").to(z.device)
            check_classes(self.name, classes, probs.shape[1])
            return probs.view(c, z.shape[1], -1)

        with until_budget(self.name, meta), progress_bar("rlb-mi agents", p.episodes) as advance:
            for episode in range(p.episodes):
                state, test_state = torch.randn(2, c, d, generator=gen).to(y.device)
                with torch.no_grad():
                    action = torch.stack([agent.act(s, gen)[0] for agent, s in zip(agents, torch.stack([state, test_state], 1))])
                # rows per class: the training action, then the test action
                nxt = p.alpha * torch.stack([state, test_state], 1) + (1 - p.alpha) * action
                latents = nxt if p.alpha == 0 else torch.cat([nxt, action[:, :1]], 1)
                probs = confidence(latents)
                reward = self.reward(probs[:, 0], probs[:, -1] if p.alpha else probs[:, 0], classes)
                buffer.append((state, action[:, 0], reward))
                found = probs[:, 1].gather(1, classes[:, None])
                pool_z, pool_p = torch.cat([best_z, nxt[:, 1:2]], 1), torch.cat([best_p, found], 1)
                best_p, top = pool_p.topk(keep, dim=1)
                best_z = pool_z.gather(1, top[..., None].expand(c, keep, d))
                if len(buffer) > p.agent_batch:
                    pick = torch.randint(len(buffer), (p.agent_batch,), generator=gen).tolist()
                    states, actions, rewards = (torch.stack([buffer[i][k] for i in pick], 1) for k in range(3))
                    for k, agent in enumerate(agents):
                        agent.update(states[k], actions[k], rewards[k], gen)
                meta["episodes"] = episode + 1
                advance(confidence=best_p[:, 0].mean().item())
        meta["best_confidence"] = best_p.tolist()
        return best_z[which, rank_in_class(y)]

    def reward(self, state_probs: torch.Tensor, action_probs: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """r per class (module docstring) from the probabilities of G(s') and G(a), each (c, K)."""
        p = self.params
        mine = state_probs.gather(1, classes[:, None]).squeeze(1)
        others = state_probs.scatter(1, classes[:, None], 0.0).amax(1)
        margin = (mine - others).clamp_min(p.margin_floor).log()
        return p.w_state * mine.clamp_min(1e-30).log() + p.w_action * action_probs.gather(1, classes[:, None]).squeeze(1).clamp_min(1e-30).log() + p.w_margin * margin
