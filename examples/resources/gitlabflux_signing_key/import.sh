# <project or group path>:<variable prefix>:<namespace>/<secret name>
terraform import gitlabflux_signing_key.team_a team-a/deploy:COSIGN:team-a/cosign-keys
