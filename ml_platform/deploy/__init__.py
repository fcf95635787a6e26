"""Deployers (model servers per variant) and the rollout's seams over the weighted router.

    deployer = LocalProcessDeployer(platform_paths().deployments, project="churn")
    endpoint = deployer.deploy("canary", model_ref)        # python -m ml_platform.serving.server
    traffic = RouterTrafficController(router_url, token, deployer=deployer)
    traffic.attach_canary(endpoint.url); traffic.set_weights(90, 10)
    metrics = RouterMetricsSource(router_url, token)       # -> (stable, canary) VariantMetrics

``DockerDeployer`` runs model images (``ml_platform.images``) the same way, with host
networking. Both persist what they run under ``<platform home>/deployments/<project>/``.
"""

from ml_platform.deploy.base import Deployer, DeploymentRecord, DeploymentStore, Endpoint, Health
from ml_platform.deploy.docker import DockerDeployer
from ml_platform.deploy.local import LocalProcessDeployer
from ml_platform.deploy.router import (
    RouterMetricsSource,
    RouterTrafficController,
    histogram_quantile,
)

__all__ = [
    "Deployer",
    "DeploymentRecord",
    "DeploymentStore",
    "DockerDeployer",
    "Endpoint",
    "Health",
    "LocalProcessDeployer",
    "RouterMetricsSource",
    "RouterTrafficController",
    "histogram_quantile",
]
