# <project path>:<agent name>
terraform import gitlabflux_agent.prod fleet/agents:prod
