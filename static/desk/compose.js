// The composer: drafts per conversation, canned responses, @mentions, the collision warning.
