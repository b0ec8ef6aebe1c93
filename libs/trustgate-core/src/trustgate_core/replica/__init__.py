from trustgate_core.replica.replica import ConfigReplica
from trustgate_core.replica.state import ReplicaState

__all__ = ["ConfigReplica", "ReplicaState"]
