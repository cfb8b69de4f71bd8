// Conversation actions: snooze, team transfer, the agent's availability (see keys.js for keys).
