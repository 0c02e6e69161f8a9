"""notification_service: the emails of the contract (welcome, image ready, image failed)."""
