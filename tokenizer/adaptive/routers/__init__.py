"""The routers of the InfoTok adaptive layer (arXiv 2512.16975): one `Router` interface (`base`),
one module per router (`elbo`, the paper's rule; `gain`; `gain2`; `latent`) and the registry, the
only place that knows their names (`registry.get_router`, `registry.router_names`).

Nothing is imported here, so that `registry` stays cheap to import (no torch) for the CLI."""
