"""The firewall's REST API: evaluate (one or a batch), evaluations and feedback, the policy, threat patterns."""
