# A browser viewer through a Channel: joins "view:camera:<id>", gets each
# JPEG as a binary "frame" push (camera_hook.js shows it in an <img>). Works
# with all three camera shapes: they all publish on "frames:<id>".
defmodule MyAppWeb.ViewerChannel do
  use Phoenix.Channel, log_handle_in: false

  # Frames waiting in this process beyond this are stale: a slow browser
  # gets the newest frame, not a queue (the same rule as zerocam's relay).
  @max_backlog 2

  @impl true
  def join("view:camera:" <> id, _params, socket) do
    :ok = Phoenix.PubSub.subscribe(MyApp.PubSub, "frames:" <> id)
    {:ok, assign(socket, camera: id)}
  end

  @impl true
  def handle_info({:zerocam_frame, _id, jpeg}, socket) do
    {:message_queue_len, backlog} = Process.info(self(), :message_queue_len)

    if backlog <= @max_backlog do
      push(socket, "frame", {:binary, jpeg})
    end

    {:noreply, socket}
  end

  def handle_info({:zerocam_stats, _id, stats}, socket) do
    push(socket, "stats", stats)
    {:noreply, socket}
  end

  def handle_info(_other, socket), do: {:noreply, socket}
end
