# <project or group path>:<variable prefix>:<namespace>/<secret name>
terraform import gitlabflux_signing_key.team_a team-a/deploy:COSIGN:team-a/cosign-keys

# In one of the provider's clusters (a resource with cluster_name = "prod-eu"): add @<cluster_name>
terraform import gitlabflux_signing_key.team_a team-a/deploy:COSIGN:team-a/cosign-keys@prod-eu
