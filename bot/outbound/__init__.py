"""What is sent later: the outbound sender, the notification planner, notifier and staff alerts."""
