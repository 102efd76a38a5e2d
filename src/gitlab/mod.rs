//! GitLab domain knowledge: naming rules now; the REST client joins it with the agent work.

pub mod names;
