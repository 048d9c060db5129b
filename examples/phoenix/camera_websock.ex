# (2) A WebSock handler (Phoenix ≥ 1.7 / Plug + Bandit or Cowboy) for zerocam's
# `raw` dialect, upgraded from a plain route with WebSockAdapter.upgrade/4.
#
# router.ex:
#   get "/ingest/:camera", MyAppWeb.CameraUpgradeController, :upgrade
# zerocam (protocol = "raw"): url = "wss://example.com/ingest/porch", token = "…"
defmodule MyAppWeb.CameraUpgradeController do
  use MyAppWeb, :controller

  def upgrade(conn, %{"camera" => camera} = params) do
    if Plug.Crypto.secure_compare(params["token"] || "", Application.fetch_env!(:my_app, :camera_token)) do
      conn
      |> WebSockAdapter.upgrade(MyAppWeb.CameraWebSock, %{camera: camera}, timeout: 60_000)
      |> halt()
    else
      conn |> send_resp(401, "bad token") |> halt()
    end
  end
end

defmodule MyAppWeb.CameraWebSock do
  @behaviour WebSock

  @impl true
  def init(state), do: {:ok, state}

  @impl true
  def handle_in({jpeg, opcode: :binary}, state) do
    # "frames:<id>" and a shape no Channel expects (see camera_socket.ex).
    Phoenix.PubSub.broadcast(MyApp.PubSub, "frames:" <> state.camera, {:zerocam_frame, state.camera, jpeg})
    # One 0x0A per frame: the camera then keeps at most `window` frames in flight.
    {:push, {:binary, <<10>>}, state}
  end

  def handle_in({_json, opcode: :text}, state), do: {:ok, state}

  @impl true
  def handle_info({:camera_command, cmd}, state), do: {:push, {:text, Jason.encode!(cmd)}, state}
  def handle_info(_msg, state), do: {:ok, state}

  @impl true
  def terminate(_reason, _state), do: :ok
end
