# <project path>:<agent id>:<token id>
terraform import gitlabflux_agent_token.prod fleet/agents:12:345
