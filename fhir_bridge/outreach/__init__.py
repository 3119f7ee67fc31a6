"""From resource changes to messages: planning, dispatch, delivery and write-back."""
