# As in the README: jobd's address and token for perform_later (the adapter
# falls back to JOBD_URL and JOBD_API_TOKEN when these are not set).
Rails.application.config.jobd.url = ENV.fetch("JOBD_URL", "http://127.0.0.1:8080")
Rails.application.config.jobd.token = ENV["JOBD_API_TOKEN"]
